-- GPU utilisation and power per series (a region or a model, $split) and time bucket
-- (right-closed, epoch-aligned; at most ($end - $start) / $bucket_s points per
-- series). util_weighted_s / gpu_seconds = time-weighted mean utilisation (0-1);
-- power_energy_j / covered_s = the series' total draw in watts, where covered_s is
-- the number of distinct steps with power samples times the step.
-- Params: $split (VARCHAR: region | model); $start, $end (TIMESTAMP, UTC);
--         $regions, $models, $arms (VARCHAR[]); $bucket_s (INTEGER, seconds).
SELECT
    CASE WHEN $split = 'model' THEN coalesce(model, '') ELSE region END AS series,
    make_timestamp(((epoch_us(ts_utc) + $bucket_s::BIGINT * 1000000 - 1) // ($bucket_s::BIGINT * 1000000))
                   * ($bucket_s::BIGINT * 1000000)) AS bucket_end,
    sum(mean * step_s) FILTER (WHERE signal = 'gpu_utilization') AS util_weighted_s,
    sum(step_s) FILTER (WHERE signal = 'gpu_utilization' AND mean IS NOT NULL) AS gpu_seconds,
    sum(mean * step_s) FILTER (WHERE signal = 'gpu_power') AS power_energy_j,
    count(DISTINCT ts_utc) FILTER (WHERE signal = 'gpu_power')
        * max(step_s) FILTER (WHERE signal = 'gpu_power') AS covered_s
FROM gauges
WHERE signal IN ('gpu_utilization', 'gpu_power')
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND list_contains($arms, coalesce(arm, ''))
GROUP BY ALL
ORDER BY series, bucket_end;
