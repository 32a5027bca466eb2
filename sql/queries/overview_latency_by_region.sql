-- Request latency buckets per region: for each upper bound le (seconds, +Infinity
-- for +Inf), the number of requests in ($start, $end] that took <= le seconds
-- (summed per-step increases of the cumulative buckets). Percentiles are computed
-- from these by analytics.overview.percentiles.
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models (VARCHAR[]).
SELECT region, le, sum(value) AS value
FROM histograms
WHERE signal = 'latency'
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
GROUP BY region, le
ORDER BY region, le;
