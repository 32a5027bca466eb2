-- Request latency buckets per region: for each upper bound le (seconds, +Infinity
-- for +Inf), the number of requests in ($start, $end] that took <= le seconds
-- (summed per-step increases of the cumulative buckets). Percentiles are computed
-- from these by analytics.overview.percentiles.
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[];
--         '' = rows without that label); $all_arms (VARCHAR[]): every arm the
--         filter knows; a row whose arm it does not know (e.g. GPU gauges without
--         an arm label) is kept, as the filter cannot deselect it.
SELECT region, le, sum(value) AS value
FROM histograms
WHERE signal = 'latency'
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY region, le
ORDER BY region, le;
