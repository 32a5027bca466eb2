-- Window sums of many counter or histogram signals at one time $at, in one pass, for
-- the status of many Occurrences SLOs at once (observatory/slo_engine.py, status_many).
-- A template: observatory/slo_engine.py fills the braces with Store.hourly_plan's files
-- (Store.parquet_source) before running it.
--   {hourly}         fresh hourly roll-ups (counters_hourly / histograms_hourly): whole hours
--   {minutes_split}  their data files: only the steps of the hours in $split_hours
--   {minutes_all}    data files without a fresh roll-up: every step
--   {le}             le (histograms) or NULL::DOUBLE AS le (counters)
-- Every window ends at $at, so windows are nested: a step belongs to every window at
-- least as long as its age, and k counts the windows too short to hold it; the engine
-- adds up k = 0 .. i for window i.  Window w holds the steps with
-- ts_utc > $at - w AND ts_utc <= $at.  An hour (h - 1h, h] that no window edge and no
-- maintenance edge cuts lies in one k and one maintenance state as a whole, so its
-- roll-up row (age $at - h, the age of its youngest step) stands for its steps; the
-- hours an edge cuts ($split_hours) are read step by step.  Sums are exact either way.
--   $signals   the signals needed
--   $les       the bucket bounds needed (each SLO's lower and upper bound, +Inf); NULL
--              for counters
--   $w_secs    window lengths in seconds, ASCENDING
--   $split_hours   hour ends (TIMESTAMP[]) whose hour an edge cuts
--   $m_start, $m_end, $m_region   maintenance intervals (m_start[i], m_end[i]] of region
--              m_region[i] (NULL: every region), excluded
-- Output: region, model, arm, signal, le, k, value (sum of increases), steps (rows: steps
-- with data for series without instances; the engine caps coverage at 1).
-- k = the number of windows no longer than the age (the windows too short to hold it).
-- (len(...) = 0 OR NOT EXISTS ...): without maintenance windows the anti-join is skipped.
WITH steps AS (
    SELECT region, model, arm, signal, {le}, value, 1 AS n, ts_utc AS t
    FROM {minutes_split}
    WHERE ts_utc > $at::TIMESTAMP - to_seconds($w_secs[len($w_secs)]) AND ts_utc <= $at
      AND list_contains($split_hours::TIMESTAMP[],
                        date_trunc('hour', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 hour)
    UNION ALL
    SELECT region, model, arm, signal, {le}, value, 1 AS n, ts_utc AS t
    FROM {minutes_all}
    WHERE ts_utc > $at::TIMESTAMP - to_seconds($w_secs[len($w_secs)]) AND ts_utc <= $at
    UNION ALL
    SELECT region, model, arm, signal, {le}, value, "rows" AS n, hour_utc AS t
    FROM {hourly}
    WHERE hour_utc - INTERVAL 1 hour >= $at::TIMESTAMP - to_seconds($w_secs[len($w_secs)])
      AND hour_utc <= $at
      AND NOT list_contains($split_hours::TIMESTAMP[], hour_utc)
)
SELECT region, model, arm, signal, le,
       len(list_filter($w_secs, lambda w: w <= age)) AS k,
       sum(value) AS value, sum(n) AS steps
FROM (
    SELECT *, epoch($at::TIMESTAMP) - epoch(t) AS age
    FROM steps
    WHERE list_contains($signals, signal)
      AND ($les::DOUBLE[] IS NULL OR list_contains($les::DOUBLE[], le))
      AND (len($m_start::TIMESTAMP[]) = 0 OR NOT EXISTS (
          SELECT 1 FROM (SELECT unnest($m_start::TIMESTAMP[]) AS s,
                                unnest($m_end::TIMESTAMP[]) AS e,
                                unnest($m_region::VARCHAR[]) AS r) m
          WHERE steps.t > m.s AND steps.t <= m.e AND (m.r IS NULL OR m.r = steps.region)))
)
GROUP BY ALL
