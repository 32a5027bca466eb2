-- The latency histogram's bucket bounds (le, seconds; +Infinity last) of one model's
-- arms in a window: the $les of experiment_latency_buckets.sql.
--   $model, $arms, $regions (VARCHAR[], not NULL), $start, $end as there
SELECT DISTINCT le
FROM histograms
WHERE signal = 'latency'
  AND model = $model AND list_contains($arms, arm)
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
ORDER BY le;
