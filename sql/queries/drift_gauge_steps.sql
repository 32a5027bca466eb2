-- Drift: per-step values of a gauge per region, model and arm.  Steps are grouped
-- into right-closed buckets of $step_s seconds counted back from $origin (bucket k
-- holds ts_utc in ($origin - (k+1) x $step_s, $origin - k x $step_s]); the value is
-- the mean over instances (GPUs) and steps of the stored per-step means.
-- Params: $signal (a gauge signal), $start, $end (TIMESTAMP, UTC), $origin, $step_s,
-- $regions, $models (VARCHAR[] or NULL).
-- Output: region, model, arm, k, value, samples.
SELECT region,
       coalesce(model, '') AS model,
       coalesce(arm, '') AS arm,
       (epoch_us($origin::TIMESTAMP) - epoch_us(ts_utc)) // ($step_s::BIGINT * 1000000) AS k,
       avg(mean) AS value,
       sum(samples) AS samples
FROM gauges
WHERE signal = $signal
  AND ts_utc > $start AND ts_utc <= $end
  AND mean IS NOT NULL AND isfinite(mean)
  AND ($regions IS NULL OR list_contains($regions, region))
  AND ($models IS NULL OR list_contains($models, model))
GROUP BY ALL
ORDER BY region, model, arm, k;
