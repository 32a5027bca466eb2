-- Window sums of histogram buckets at one time $at, in one pass, for the status of
-- many Occurrences latency SLOs at once; nested windows and k as in
-- slo_batch_counters.sql.
--   $signals   the histogram signals needed
--   $les       the bucket bounds needed (each SLO's lower and upper bound, +Inf)
--   $w_secs    window lengths in seconds, ASCENDING (at most 16)
--   $m_start, $m_end   maintenance intervals excluded
-- Output: region, model, arm, signal, le, k, value (sum of bucket increases), steps (rows).
-- (A CASE over the window list and count(*) instead of count(DISTINCT ts_utc): 30 days x
-- 6 regions of buckets take 2.6 s instead of 35 s.)
-- (len(...) = 0 OR NOT EXISTS ...): without maintenance windows the anti-join is
-- skipped, 2.5x faster on 30 days of buckets.
SELECT region, model, arm, signal, le,
       CASE WHEN age < $w_secs[1] THEN 0
            WHEN age < $w_secs[2] THEN 1
            WHEN age < $w_secs[3] THEN 2
            WHEN age < $w_secs[4] THEN 3
            WHEN age < $w_secs[5] THEN 4
            WHEN age < $w_secs[6] THEN 5
            WHEN age < $w_secs[7] THEN 6
            WHEN age < $w_secs[8] THEN 7
            WHEN age < $w_secs[9] THEN 8
            WHEN age < $w_secs[10] THEN 9
            WHEN age < $w_secs[11] THEN 10
            WHEN age < $w_secs[12] THEN 11
            WHEN age < $w_secs[13] THEN 12
            WHEN age < $w_secs[14] THEN 13
            WHEN age < $w_secs[15] THEN 14
            WHEN age < $w_secs[16] THEN 15
            ELSE 16 END AS k,
       sum(value) AS value, count(*) AS steps
FROM (
    SELECT *, epoch($at::TIMESTAMP) - epoch(ts_utc) AS age
    FROM histograms
    WHERE list_contains($signals, signal) AND list_contains($les::DOUBLE[], le)
      AND ts_utc > $at::TIMESTAMP - to_seconds($w_secs[len($w_secs)]) AND ts_utc <= $at
      AND (len($m_start::TIMESTAMP[]) = 0 OR NOT EXISTS (
          SELECT 1 FROM (SELECT unnest($m_start::TIMESTAMP[]) AS s,
                                unnest($m_end::TIMESTAMP[]) AS e) m
          WHERE histograms.ts_utc > m.s AND histograms.ts_utc <= m.e))
)
GROUP BY ALL
