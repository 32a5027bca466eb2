-- Regression detection: the names behind the series hashes of regression_*_rows.sql
-- (every region, model, arm with a request counter or a gauge in the window).
-- Params: $start, $end (TIMESTAMP, UTC); $regions (VARCHAR[]).
SELECT DISTINCT
    hash(region, coalesce(model, ''), coalesce(arm, '')) AS series,
    region,
    coalesce(model, '') AS model,
    coalesce(arm, '') AS arm
FROM (
    SELECT region, model, arm FROM counters
    WHERE signal = 'requests' AND ts_utc > $start AND ts_utc <= $end
      AND (len($regions) = 0 OR list_contains($regions, region))
    UNION ALL
    SELECT region, model, arm FROM gauges
    WHERE signal IN ('accuracy', 'gpu_utilization', 'gpu_power', 'cost')
      AND ts_utc > $start AND ts_utc <= $end
      AND (len($regions) = 0 OR list_contains($regions, region))
)
ORDER BY region, model, arm;
