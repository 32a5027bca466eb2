-- Window sums of an SLO at every evaluation time, per group, for burn-rate history
-- and alert timelines.  Slices are laid on a dense grid of slice ends in
-- ($grid_start, $end] (a missing slice is 0 events, no data); running sums c(t) make
-- the window (t - w, t] = c(t) - c(t - w), the same right-closed convention as
-- slo_window_status.sql.  Evaluations at slice ends in ($eval_start, $end] with
-- epoch(ts_utc) divisible by $every_s.
-- {slices} is slo_slices.sql (filled in by the engine).
-- Output, ordered by group, time and window length (every (group, time) has one row
-- per window): ts_utc, region, model, arm, window, window_s, bad, total, slices, and
-- the running sums cum_bad, cum_total since the grid's start.
WITH slices AS (
{slices}
),
groups AS (SELECT DISTINCT region, model, arm FROM slices),
-- The grid starts at the first slice with rows (earlier slices would all be 0).
grid AS (
    SELECT g.region, g.model, g.arm, t.ts_utc
    FROM groups g,
         generate_series(
             greatest($grid_start + to_seconds($slice_s), (SELECT min(ts_utc) FROM slices)),
             $end, to_seconds($slice_s)) AS t(ts_utc)
),
dense AS (
    SELECT grid.ts_utc, grid.region, grid.model, grid.arm,
           coalesce(s.bad, 0) AS bad, coalesce(s.total, 0) AS total,
           coalesce(s.has_data, false)::INTEGER AS has
    FROM grid LEFT JOIN slices s USING (ts_utc, region, model, arm)
),
cum AS (
    SELECT ts_utc, region, model, arm,
           sum(bad) OVER w AS cb, sum(total) OVER w AS ct, sum(has) OVER w AS ch
    FROM dense
    WINDOW w AS (PARTITION BY region, model, arm ORDER BY ts_utc
                 ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
windows AS (
    SELECT unnest($w_names::VARCHAR[]) AS name, unnest($w_secs::BIGINT[]) AS secs
)
SELECT a.ts_utc, a.region, a.model, a.arm, w.name AS window, w.secs AS window_s,
       a.cb - coalesce(b.cb, 0) AS bad,
       a.ct - coalesce(b.ct, 0) AS total,
       a.ch - coalesce(b.ch, 0) AS slices,
       a.cb AS cum_bad, a.ct AS cum_total
FROM cum a
CROSS JOIN windows w
LEFT JOIN cum b
  ON b.region = a.region AND b.model = a.model AND b.arm = a.arm
 AND b.ts_utc = a.ts_utc - to_seconds(w.secs)
WHERE a.ts_utc > $eval_start AND epoch(a.ts_utc)::BIGINT % $every_s = 0
ORDER BY a.region, a.model, a.arm, a.ts_utc, w.secs, w.name
