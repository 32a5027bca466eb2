-- Request latency buckets per region: for each upper bound le (seconds, +Infinity
-- for +Inf), the number of requests in ($start, $end] that took <= le seconds
-- (summed per-step increases of the cumulative buckets). Percentiles are computed
-- from these by analytics.overview.percentiles.
-- {{rows:<table>:<signals>}} is filled by Store.named (observatory/store/, window_rows)
-- with the rows of ($start, $end]: whole hours from the exact hourly roll-ups, whole
-- 5-minute periods from the 5-minute roll-ups, the 5-minute periods a window edge
-- cuts and partitions without a fresh roll-up from minute rows; ts_utc is a step end
-- or a period end (docs/architecture.md, "Hourly roll-up").
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[];
--         '' = rows without that label); $all_arms (VARCHAR[]): every arm the
--         filter knows; a row whose arm it does not know (e.g. GPU gauges without
--         an arm label) is kept, as the filter cannot deselect it.
SELECT region, le, sum(value) AS value
FROM {{rows:histograms:latency}}
WHERE list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY region, le
ORDER BY region, le;
