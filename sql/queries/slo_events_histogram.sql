-- SLO events from a histogram: observations <= threshold over all observations, one
-- row per step (ts_utc = END of the step) and group.  Buckets hold per-step
-- increases of cumulative le buckets, so good = C(lower) + frac x (C(upper) - C(lower))
-- adds up across steps exactly like the buckets themselves.
--   $signal        the histogram (latency, ttft)
--   $lower, $upper, $frac   from analytics.slo.threshold_buckets: exact at a bucket
--                  bound (lower = upper, frac = 1); else linear inside (lower, upper];
--                  $lower NULL means "below the first bucket" (C = 0)
--   $all_good      percentile objectives above the highest finite bound: every
--                  observation counts as good (histogram_quantile caps there)
--   $num_is_bad    the threshold side counts bad events (else good)
--   filters, grouping and maintenance as in slo_events_counter.sql
--   {source}      the histograms view, or a read_parquet of some of its partitions (the
--                  engine fills it in: observatory/slo_engine.py, Prepared.over)
-- Output: ts_utc, region, model, arm, bad, total.
SELECT ts_utc, region, model, arm,
       CASE WHEN $num_is_bad THEN good ELSE tot - good END AS bad,
       tot AS total
FROM (
    SELECT ts_utc, region, model, arm, tot,
           CASE WHEN $all_good THEN tot ELSE c_lo + $frac * (c_up - c_lo) END AS good
    FROM (
        SELECT ts_utc,
               CASE WHEN $by_region THEN region ELSE '*' END AS region,
               CASE WHEN $by_model THEN model ELSE '*' END AS model,
               CASE WHEN $by_arm THEN arm ELSE '*' END AS arm,
               coalesce(sum(value) FILTER (WHERE le = $lower), 0) AS c_lo,
               coalesce(sum(value) FILTER (WHERE le = $upper), 0) AS c_up,
               coalesce(sum(value) FILTER (WHERE le = 'infinity'::DOUBLE), 0) AS tot
        FROM {source} AS histograms
        WHERE signal = $signal
          AND (le IN ($lower, $upper) OR le = 'infinity'::DOUBLE)
          AND ts_utc > $start AND ts_utc <= $end
          AND ($regions IS NULL OR list_contains($regions, region))
          AND ($models IS NULL OR list_contains($models, model))
          AND ($arms IS NULL OR list_contains($arms, arm))
          AND (len($m_start::TIMESTAMP[]) = 0 OR NOT EXISTS (
              SELECT 1 FROM (SELECT unnest($m_start::TIMESTAMP[]) AS s,
                                    unnest($m_end::TIMESTAMP[]) AS e,
                                    unnest($m_region::VARCHAR[]) AS r) m
              WHERE histograms.ts_utc > m.s AND histograms.ts_utc <= m.e
                AND (m.r IS NULL OR m.r = histograms.region)))
        GROUP BY ALL
    )
)
