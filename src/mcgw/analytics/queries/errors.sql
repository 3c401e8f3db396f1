-- Error rate per backend: 5xx answers (including the gateway's own 502/503/504) over
-- all requests, from the gateway's access log.
SELECT
  JSON_VALUE(json_payload.backend) AS backend,
  COUNT(*) AS requests,
  COUNTIF(http_request.status >= 500) AS errors,
  ROUND(100 * COUNTIF(http_request.status >= 500) / COUNT(*), 2) AS error_percent
FROM
  `mcgw-local.global._Default._AllLogs`
WHERE
  resource.type = "http_load_balancer"
GROUP BY
  backend
ORDER BY
  backend
