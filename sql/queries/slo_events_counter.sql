-- SLO events from counters: one row per step (ts_utc = END of the step) and group.
-- Used by observatory/slo_engine.py as the {events} of slo_window_*.sql.
--   $num_signal    the good or bad counter (errors); for a spend budget the spend (energy)
--   $total_signal  the total counter (requests); NULL for a spend budget
--   $num_is_bad    true: num counts bad events; false: num counts good events
--   $allow_step    spend budget: the allowance of one step (total); else NULL
--   $regions, $models, $arms   filters (VARCHAR[]; NULL = all)
--   $by_region, $by_model, $by_arm   keep that dimension (else '*')
--   $start, $end   the steps (start, end]
--   $m_start, $m_end, $m_region   maintenance intervals (m_start[i], m_end[i]] of
--                  region m_region[i] (NULL: every region): steps ending inside are
--                  excluded from numerator AND denominator
--   {source}      the counters view, or a read_parquet of some of its partitions (the
--                  engine fills it in: observatory/slo_engine.py, Prepared.over)
-- Output: ts_utc, region, model, arm, bad, total (events, exact counter increases).
SELECT ts_utc, region, model, arm,
       CASE WHEN $allow_step IS NOT NULL THEN num
            WHEN $num_is_bad THEN num ELSE tot - num END AS bad,
       coalesce($allow_step, tot) AS total
FROM (
    SELECT ts_utc,
           CASE WHEN $by_region THEN region ELSE '*' END AS region,
           CASE WHEN $by_model THEN model ELSE '*' END AS model,
           CASE WHEN $by_arm THEN arm ELSE '*' END AS arm,
           coalesce(sum(value) FILTER (WHERE signal = $num_signal), 0) AS num,
           coalesce(sum(value) FILTER (WHERE signal = $total_signal), 0) AS tot
    FROM {source} AS counters
    WHERE signal IN ($num_signal, coalesce($total_signal, $num_signal))
      AND ts_utc > $start AND ts_utc <= $end
      AND ($regions IS NULL OR list_contains($regions, region))
      AND ($models IS NULL OR list_contains($models, model))
      AND ($arms IS NULL OR list_contains($arms, arm))
      AND (len($m_start::TIMESTAMP[]) = 0 OR NOT EXISTS (
          SELECT 1 FROM (SELECT unnest($m_start::TIMESTAMP[]) AS s,
                                unnest($m_end::TIMESTAMP[]) AS e,
                                unnest($m_region::VARCHAR[]) AS r) m
          WHERE counters.ts_utc > m.s AND counters.ts_utc <= m.e
            AND (m.r IS NULL OR m.r = counters.region)))
    GROUP BY ALL
)
