-- Requests per backend cluster and zone, from the gateway's access log: how the
-- gateway spread the load (SEED.md's question, asked of the load balancer's own log).
SELECT
  JSON_VALUE(json_payload.cluster) AS cluster,
  JSON_VALUE(json_payload.zone) AS zone,
  COUNT(*) AS requests,
  ROUND(100 * COUNT(*) / SUM(COUNT(*)) OVER (), 2) AS percent
FROM
  `mcgw-local.global._Default._AllLogs`
WHERE
  resource.type = "http_load_balancer"
GROUP BY
  cluster, zone
ORDER BY
  requests DESC, cluster, zone
