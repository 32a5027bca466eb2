-- SLO events from a gauge, one row per step (ts_utc = END of the step) and group.
-- Each stored row (one instance in one step, with samples > 0) is a data point.
--   $signal        the gauge (gpu_utilization, accuracy, cost)
--   $stat          which per-step aggregate: mean, max or last
--   $mode          threshold: a point is good when stat $op $value;
--                  raw_success / raw_failure: the point is a ratio of good / bad;
--                  spend: a per-hour rate (USD/h) integrated over the step, against
--                  the allowance $allow_step of one step
--   $op, $value    lt, lte, gt, gte and the bound (mode threshold)
--   filters, grouping and maintenance as in slo_events_counter.sql
--   {source}      the gauges view, or a read_parquet of some of its partitions (the
--                  engine fills it in: observatory/slo_engine.py, Prepared.over)
-- Output: ts_utc, region, model, arm, bad, total.
SELECT ts_utc,
       CASE WHEN $by_region THEN region ELSE '*' END AS region,
       CASE WHEN $by_model THEN model ELSE '*' END AS model,
       CASE WHEN $by_arm THEN arm ELSE '*' END AS arm,
       CASE $mode
           WHEN 'threshold' THEN count(*) FILTER (WHERE NOT coalesce(
               CASE $op WHEN 'lt' THEN v < $value WHEN 'lte' THEN v <= $value
                        WHEN 'gt' THEN v > $value WHEN 'gte' THEN v >= $value END, false))
           WHEN 'raw_success' THEN sum(1 - least(greatest(v, 0), 1))
           WHEN 'raw_failure' THEN sum(least(greatest(v, 0), 1))
           WHEN 'spend' THEN sum(v * step_s / 3600.0)
       END::DOUBLE AS bad,
       CASE WHEN $mode = 'spend' THEN $allow_step ELSE count(*) END::DOUBLE AS total
FROM (
    SELECT ts_utc, region, model, arm, step_s,
           CASE $stat WHEN 'max' THEN "max" WHEN 'last' THEN "last" ELSE "mean" END AS v
    FROM {source} AS gauges
    WHERE signal = $signal AND samples > 0
      AND ts_utc > $start AND ts_utc <= $end
      AND ($regions IS NULL OR list_contains($regions, region))
      AND ($models IS NULL OR list_contains($models, model))
      AND ($arms IS NULL OR list_contains($arms, arm))
      AND (len($m_start::TIMESTAMP[]) = 0 OR NOT EXISTS (
          SELECT 1 FROM (SELECT unnest($m_start::TIMESTAMP[]) AS s,
                                unnest($m_end::TIMESTAMP[]) AS e,
                                unnest($m_region::VARCHAR[]) AS r) m
          WHERE gauges.ts_utc > m.s AND gauges.ts_utc <= m.e
            AND (m.r IS NULL OR m.r = gauges.region)))
)
GROUP BY ALL
