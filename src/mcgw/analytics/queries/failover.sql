-- Spill-over and fail-over events per minute: requests the gateway sent past the
-- closest region (spillover: it was at capacity; failover: it was unhealthy), and where
-- they went, from the routing reason in the gateway's access log.
SELECT
  TIMESTAMP_TRUNC(timestamp, MINUTE) AS minute,
  JSON_VALUE(json_payload.reason) AS reason,
  JSON_VALUE(json_payload.backend) AS backend,
  JSON_VALUE(json_payload.cluster) AS cluster,
  JSON_VALUE(json_payload.zone) AS zone,
  COUNT(*) AS requests,
  MIN(timestamp) AS first_seen,
  MAX(timestamp) AS last_seen
FROM
  `mcgw-local.global._Default._AllLogs`
WHERE
  resource.type = "http_load_balancer"
  AND JSON_VALUE(json_payload.reason) IN ("spillover", "failover")
GROUP BY
  minute, reason, backend, cluster, zone
ORDER BY
  minute, reason, backend, cluster, zone
