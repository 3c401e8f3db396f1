SELECT
  JSON_VALUE(json_payload.cluster) AS cluster,
  JSON_VALUE(json_payload.zone) AS zone,
  http_request.status AS status,
  COUNT(*) AS requests,
  MIN(timestamp) AS first_seen
FROM
  `sandbox-mc-gateway.global._Default._AllLogs`
WHERE
  resource.type = "http_load_balancer"
GROUP BY
  cluster, zone, status
ORDER BY
  cluster, zone, status
