-- Window sums of an SLO at one time $at, per group, in one pass: every window ends
-- at $at, so the windows are nested and each slice belongs to every window at least
-- as long as its age.  A window w holds the slices with ts_utc > $at - w AND
-- ts_utc <= $at (right-closed, like a Prometheus 3 range selector at $at).
--   $w_secs   the window lengths in seconds, ASCENDING (at most 16)
-- {slices} is slo_slices.sql (filled in by the engine).
-- Output: region, model, arm, k, bad, total, slices -- the sums of the slices whose
-- shortest window is $w_secs[k + 1] (k counts the windows not holding them); the
-- engine adds up k = 0 .. i for window i.
WITH slices AS (
{slices}
)
SELECT region, model, arm,
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
       sum(bad) AS bad, sum(total) AS total,
       count(*) FILTER (WHERE has_data) AS slices
FROM (
    SELECT *, epoch($at::TIMESTAMP) - epoch(ts_utc) AS age FROM slices
    WHERE ts_utc > $at::TIMESTAMP - to_seconds($w_secs[len($w_secs)]) AND ts_utc <= $at
)
GROUP BY ALL
