-- GPU utilisation and cost per region in ($start, $end].
-- gpu_util_weighted = sum(mean * step_s) over GPU-steps (ratio-seconds) and
-- gpu_util_seconds = sum(step_s): their quotient is the time-weighted mean
-- utilisation, 0-1 (summed first so that regions and the fleet combine exactly).
-- cost_usd = sum(mean * step_s) / 3600 over rows: the cost gauge is USD per hour.
-- {{rows:<table>:<signals>}} is filled by Store.named (observatory/store/, window_rows)
-- with the rows of ($start, $end]: whole hours from the exact hourly roll-ups, whole
-- 5-minute periods from the 5-minute roll-ups, the 5-minute periods a window edge
-- cuts and partitions without a fresh roll-up from minute rows; ts_utc is a step end
-- or a period end (docs/architecture.md, "Hourly roll-up").
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[];
--         '' = rows without that label); $all_arms (VARCHAR[]): every arm the
--         filter knows; a row whose arm it does not know (e.g. GPU gauges without
--         an arm label) is kept, as the filter cannot deselect it.
SELECT
    region,
    sum(weighted) FILTER (WHERE signal = 'gpu_utilization') AS gpu_util_weighted,
    sum(seconds) FILTER (WHERE signal = 'gpu_utilization') AS gpu_util_seconds,
    sum(weighted) FILTER (WHERE signal = 'cost') / 3600.0 AS cost_usd
FROM {{rows:gauges:gpu_utilization,cost}}
WHERE list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY region
ORDER BY region;
