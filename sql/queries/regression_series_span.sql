-- Regression detection: when each region/model/arm series was first and last seen
-- (request counter), to infer deployments from label changes (a new arm or model
-- appearing, an old one disappearing).
-- Params: $start, $end (TIMESTAMP, UTC); $regions (VARCHAR[]).
SELECT
    region,
    coalesce(model, '') AS model,
    coalesce(arm, '') AS arm,
    min(ts_utc) AS first_seen,
    max(ts_utc) AS last_seen
FROM counters
WHERE signal = 'requests'
  AND ts_utc > $start AND ts_utc <= $end
  AND (len($regions) = 0 OR list_contains($regions, region))
GROUP BY ALL
ORDER BY region, model, arm;
