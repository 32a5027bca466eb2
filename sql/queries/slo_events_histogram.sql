-- SLO events from a histogram: observations <= threshold over all observations, one
-- row per step (ts_utc = END of the step) and group.  Buckets hold per-step
-- increases of cumulative le buckets, so good = C(lower) + frac x (C(upper) - C(lower))
-- adds up across steps exactly like the buckets themselves.
--   $signal        the histogram (latency, ttft)
--   $lower, $upper, $frac   from analytics.slo.threshold_buckets: exact at a bucket
--                  bound (lower = upper, frac = 1); else linear inside (lower, upper];
--                  $lower NULL means "below the first bucket" (C = 0); lower = upper
--                  = +Inf: every observation is good (a percentile objective above
--                  the highest finite bound: histogram_quantile caps there)
--   $lay_region, $lay_model, $lay_arm, $lay_lower, $lay_upper, $lay_frac (lists):
--                  the series whose own buckets answer the threshold with other
--                  bounds (exporters differ: vLLM, TGI, Prometheus); every other
--                  series uses $lower, $upper, $frac (observatory/slo_engine.py)
--   $les           every bound named above and +Inf: the rows read
--   good = sum(value x weight), weight = (1 - frac) at le = lower plus frac at le =
--                  upper: C(lower) + frac x (C(upper) - C(lower)) per series
--   $num_is_bad    the threshold side counts bad events (else good)
--   filters, grouping and maintenance as in slo_events_counter.sql
--   {source}      the histograms view, or a read_parquet of some of its partitions (the
--                  engine fills it in: observatory/slo_engine.py, Prepared.over)
-- Output: ts_utc, region, model, arm, bad, total.
SELECT ts_utc, region, model, arm,
       CASE WHEN $num_is_bad THEN good ELSE tot - good END AS bad,
       tot AS total
FROM (
    SELECT ts_utc,
           CASE WHEN $by_region THEN region ELSE '*' END AS region,
           CASE WHEN $by_model THEN model ELSE '*' END AS model,
           CASE WHEN $by_arm THEN arm ELSE '*' END AS arm,
           coalesce(sum(value * (CASE WHEN le = lo THEN 1 - fr ELSE 0 END
                                 + CASE WHEN le = up THEN fr ELSE 0 END)), 0) AS good,
           coalesce(sum(value) FILTER (WHERE le = 'infinity'::DOUBLE), 0) AS tot
    FROM (
        SELECT histograms.*,
               CASE WHEN lay.l_region IS NULL THEN $lower ELSE lay.l_lower END AS lo,
               CASE WHEN lay.l_region IS NULL THEN $upper ELSE lay.l_upper END AS up,
               CASE WHEN lay.l_region IS NULL THEN $frac ELSE lay.l_frac END AS fr
        FROM {source} AS histograms
        LEFT JOIN (
            SELECT unnest($lay_region::VARCHAR[]) AS l_region,
                   unnest($lay_model::VARCHAR[]) AS l_model,
                   unnest($lay_arm::VARCHAR[]) AS l_arm,
                   unnest($lay_lower::DOUBLE[]) AS l_lower,
                   unnest($lay_upper::DOUBLE[]) AS l_upper,
                   unnest($lay_frac::DOUBLE[]) AS l_frac
        ) AS lay
          ON lay.l_region = histograms.region
         AND lay.l_model = coalesce(histograms.model, '')
         AND lay.l_arm = coalesce(histograms.arm, '')
        WHERE signal = $signal
          AND list_contains($les::DOUBLE[], le)
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
    )
    GROUP BY ALL
)
