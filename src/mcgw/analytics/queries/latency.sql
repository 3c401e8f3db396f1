-- Latency percentiles per route, in milliseconds, from the gateway's access log.
SELECT
  route,
  COUNT(*) AS requests,
  ROUND(APPROX_QUANTILES(latency_ms, 100)[OFFSET(50)], 3) AS p50_ms,
  ROUND(APPROX_QUANTILES(latency_ms, 100)[OFFSET(90)], 3) AS p90_ms,
  ROUND(APPROX_QUANTILES(latency_ms, 100)[OFFSET(95)], 3) AS p95_ms,
  ROUND(APPROX_QUANTILES(latency_ms, 100)[OFFSET(99)], 3) AS p99_ms,
  ROUND(MAX(latency_ms), 3) AS max_ms
FROM (
  SELECT
    JSON_VALUE(json_payload.route) AS route,
    http_request.latency.seconds * 1000 + http_request.latency.nanos / 1000000 AS latency_ms
  FROM
    `mcgw-local.global._Default._AllLogs`
  WHERE
    resource.type = "http_load_balancer"
)
GROUP BY
  route
ORDER BY
  route
