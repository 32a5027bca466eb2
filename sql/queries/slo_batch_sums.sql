-- Window sums of many counter or histogram signals at one time $at, in one pass, for
-- the status of many Occurrences SLOs at once (observatory/slo_engine.py, status_many).
-- A template: observatory/slo_engine.py fills the braces before running it (no braces
-- in these comments: a filled-in text spans lines).
--   rows (braces)  the rows of (at - longest window, at]: Store.window_rows with every
--            window and maintenance edge as a cut (no piece straddles one; columns
--            ts_utc, signal, region, model, arm, [le,] value, n), each piece from the
--            coarsest fresh roll-up tier: whole UTC days (daily roll-up), whole hours,
--            whole 5-minute periods, the rest step by step.  A roll-up row's ts_utc is
--            its period's end.
--   le (braces)    le (histograms) or NULL::DOUBLE AS le (counters)
-- Every window ends at $at, so windows are nested: a step belongs to every window at
-- least as long as its age, and k counts the windows too short to hold it; the engine
-- adds up k = 0 .. i for window i.  Window w holds the steps with
-- ts_utc > $at - w AND ts_utc <= $at.  No window edge and no maintenance edge lies
-- inside a piece, so every step of a roll-up row (whose period lies in one piece)
-- has the same k and maintenance state as the row's end: sums are exact.
--   $signals   the signals needed
--   $les       the bucket bounds needed (each SLO's lower and upper bound, +Inf); NULL
--              for counters
--   $w_secs    window lengths in seconds, ASCENDING
--   $m_start, $m_end, $m_region   maintenance intervals (m_start[i], m_end[i]] of region
--              m_region[i] (NULL: every region), excluded
-- Output: region, model, arm, signal, le, k, value (sum of increases), steps (rows: steps
-- with data for series without instances; the engine caps coverage at 1).
-- k = the number of windows no longer than the age (the windows too short to hold it).
-- (len(...) = 0 OR NOT EXISTS ...): without maintenance windows the anti-join is skipped.
WITH steps AS (
    SELECT region, model, arm, signal, {le}, value, n, ts_utc AS t
    FROM {rows}
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
