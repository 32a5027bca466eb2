-- GPU utilisation and power per series (a region or a model, $split) and time bucket
-- (right-closed, epoch-aligned; at most ($end - $start) / $bucket_s points per
-- series). util_weighted_s / gpu_seconds = time-weighted mean utilisation (0-1);
-- power_energy_j / covered_s = the series' total draw in watts, where covered_s is
-- the number of distinct steps with power samples times the step: per hour, the
-- minutes holding a power step (bit_or of the rows' minute masks; a step of 60 s or
-- more on the minute grid, the collector's default, holds one minute).
-- {{rows:<table>:<signals>}} is filled by Store.named (observatory/store/, window_rows)
-- with the rows of ($start, $end]: whole hours from the exact hourly roll-ups, whole
-- 5-minute periods from the 5-minute roll-ups, the 5-minute periods a window edge
-- cuts and partitions without a fresh roll-up from minute rows; ts_utc is a step end
-- or a period end (docs/architecture.md, "Hourly roll-up"). Only tiers whose period
-- divides $bucket_s are used (5-minute buckets: no hours; 1-minute: minute rows).
-- Params: $split (VARCHAR: region | model); $start, $end (TIMESTAMP, UTC);
--         $regions, $models, $arms (VARCHAR[]); $bucket_s (INTEGER, seconds);
--         $all_arms (VARCHAR[]): every arm the filter knows; a row whose arm it
--         does not know (e.g. GPU gauges without an arm label) is kept.
WITH hours AS (
    SELECT
        CASE WHEN $split = 'model' THEN coalesce(model, '') ELSE region END AS series,
        make_timestamp(((epoch_us(ts_utc) + $bucket_s::BIGINT * 1000000 - 1) // ($bucket_s::BIGINT * 1000000))
                   * ($bucket_s::BIGINT * 1000000)) AS bucket_end,
        date_trunc('hour', ts_utc - INTERVAL 1 microsecond) AS hour,
        sum(weighted) FILTER (WHERE signal = 'gpu_utilization') AS util_weighted_s,
        sum(seconds) FILTER (WHERE signal = 'gpu_utilization') AS gpu_seconds,
        sum(weighted) FILTER (WHERE signal = 'gpu_power') AS power_energy_j,
        bit_count(bit_or(minutes) FILTER (WHERE signal = 'gpu_power')) AS power_steps,
        max(step_max) FILTER (WHERE signal = 'gpu_power') AS power_step_s
    FROM {{rows:gauges:gpu_utilization,gpu_power}}
    WHERE list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
    GROUP BY ALL
)
SELECT
    series,
    bucket_end,
    sum(util_weighted_s) AS util_weighted_s,
    sum(gpu_seconds) AS gpu_seconds,
    sum(power_energy_j) AS power_energy_j,
    (sum(power_steps) * max(power_step_s))::BIGINT AS covered_s
FROM hours
GROUP BY series, bucket_end
ORDER BY series, bucket_end;
