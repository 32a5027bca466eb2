-- Drift: a ratio of two counters per region, model, arm and step bucket (error
-- ratio = errors / requests, energy per request = energy / requests).  Buckets as in
-- drift_gauge_steps.sql; the ratio of a bucket is sum(numerator) / sum(denominator)
-- (never an average of per-step ratios).
-- Params: $num, $den (counter signals), $start, $end, $origin, $step_s, $regions,
-- $models.
-- Output: region, model, arm, k, num, den.
SELECT region,
       coalesce(model, '') AS model,
       coalesce(arm, '') AS arm,
       (epoch_us($origin::TIMESTAMP) - epoch_us(ts_utc)) // ($step_s::BIGINT * 1000000) AS k,
       coalesce(sum(value) FILTER (WHERE signal = $num), 0) AS num,
       coalesce(sum(value) FILTER (WHERE signal = $den), 0) AS den
FROM counters
WHERE signal IN ($num, $den)
  AND ts_utc > $start AND ts_utc <= $end
  AND ($regions IS NULL OR list_contains($regions, region))
  AND ($models IS NULL OR list_contains($models, model))
GROUP BY ALL
ORDER BY region, model, arm, k;
