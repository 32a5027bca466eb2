-- GPU sums per region and model over ($start, $end] (analytics/energy.py forms the
-- ratios). A GPU-step is one (instance, step) with its utilisation and power rows.
-- util_weighted_s = sum(util * step_s) (ratio-seconds), gpu_seconds = sum(step_s) of
-- GPU-steps with a utilisation; power_energy_j = sum(power_w * step_s) (joules),
-- power_seconds = sum(step_s) of GPU-steps with a power sample; idle_* are the same
-- sums over GPU-steps whose mean utilisation is below $floor.
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]);
--         $floor (DOUBLE, 0-1).
WITH gpu_steps AS (
    SELECT
        ts_utc,
        region,
        coalesce(model, '') AS model,
        arm,
        instance,
        max(mean) FILTER (WHERE signal = 'gpu_utilization') AS util,
        max(mean) FILTER (WHERE signal = 'gpu_power') AS power_w,
        max(step_s) AS step_s
    FROM gauges
    WHERE signal IN ('gpu_utilization', 'gpu_power')
      AND ts_utc > $start AND ts_utc <= $end
      AND list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND list_contains($arms, coalesce(arm, ''))
    GROUP BY ALL
)
SELECT
    region,
    model,
    sum(util * step_s) AS util_weighted_s,
    sum(step_s) FILTER (WHERE util IS NOT NULL) AS gpu_seconds,
    sum(power_w * step_s) AS power_energy_j,
    sum(step_s) FILTER (WHERE power_w IS NOT NULL) AS power_seconds,
    sum(step_s) FILTER (WHERE util < $floor) AS idle_gpu_seconds,
    sum(power_w * step_s) FILTER (WHERE util < $floor) AS idle_energy_j
FROM gpu_steps
GROUP BY region, model
ORDER BY region, model;
