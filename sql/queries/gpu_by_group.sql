-- GPU sums per region and model over ($start, $end] (analytics/energy.py forms the
-- ratios). A GPU-step is one (instance, step) with its utilisation and power rows.
-- util_weighted_s = sum(util * step_s) (ratio-seconds), gpu_seconds = sum(step_s) of
-- GPU-steps with a utilisation; power_energy_j = sum(power_w * step_s) (joules),
-- power_seconds = sum(step_s) of GPU-steps with a power sample; idle_* are the same
-- sums over GPU-steps whose mean utilisation is below $floor_pct / 100.
-- {{rows:gpu_steps}} (Store.named, observatory/store/ window_rows): GPU-steps of
-- ($start, $end], whole hours from the GPU-step roll-up summed per whole-percent
-- utilisation pct (pct < P exactly when util < P / 100), cut hours from minute rows.
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]);
--         $all_arms (VARCHAR[]): every arm the filter knows; a row whose arm it
--         does not know (e.g. GPU gauges without an arm label) is kept.
--         $floor_pct (INTEGER, 0-100: whole percents).
SELECT
    region,
    model,
    sum(util_weighted) AS util_weighted_s,
    sum(seconds) FILTER (WHERE pct IS NOT NULL) AS gpu_seconds,
    sum(power_energy_j) AS power_energy_j,
    sum(power_seconds) AS power_seconds,
    sum(seconds) FILTER (WHERE pct < $floor_pct) AS idle_gpu_seconds,
    sum(power_energy_j) FILTER (WHERE pct < $floor_pct) AS idle_energy_j
FROM {{rows:gpu_steps}}
WHERE list_contains($regions, region)
  AND list_contains($models, model)
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY region, model
ORDER BY region, model;
