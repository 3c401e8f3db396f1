SELECT
  severity,
  severity_number,
  log_id,
  resource.type AS type,
  JSON_VALUE(resource.labels.cluster_name) AS cluster,
  STRING(json_payload.message) AS message,
  INT64(json_payload.attempt) AS attempt,
  JSON_VALUE(json_payload.nested.k) AS nested_k,
  JSON_VALUE(json_payload, "$.statusDetails") AS status_details,
  http_request.latency.nanos AS latency_nanos,
  http_request.response_size AS response_size,
  text_payload
FROM
  `sandbox-mc-gateway.global._Default._AllLogs`
ORDER BY
  timestamp
