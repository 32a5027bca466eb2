-- Latency buckets per experiment replicate, in compact numeric form: per step, region,
-- arm and bucket, the step's increase of the cumulative bucket (non-zero rows only;
-- several instances of one arm simply add up).  analytics/experiment_metrics.py
-- (Buckets.from_codes) turns the rows into one bucket vector per replicate, for the
-- p50/p95/p99 Deng-Knoblich-Lu intervals and the share of requests over the SLO.
--   $model   the model
--   $arms    VARCHAR[]: the arms; output a = 1-based position in $arms
--   $regions VARCHAR[]: the regions (not NULL); output r = 1-based position
--   $les     DOUBLE[]: the bucket bounds (experiment_latency_bounds); output k
--   $start, $end   TIMESTAMP window (start, end], UTC
-- Output: t (seconds from $start to the END of the step), r, a, k, value.
SELECT (epoch(ts_utc) - epoch($start::TIMESTAMP))::INTEGER AS t,
       list_position($regions, region)::SMALLINT AS r,
       list_position($arms, arm)::SMALLINT AS a,
       list_position($les, le)::SMALLINT AS k,
       value::FLOAT AS value
FROM histograms
WHERE signal = 'latency'
  AND model = $model AND list_contains($arms, arm)
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND value <> 0;
