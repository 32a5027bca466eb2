-- Time slices of an SLO's events, per group plus the global roll-up, judged by the
-- budgeting method.  {events} is one of slo_events_*.sql (filled in by the engine).
--   $slice_s       slice length in seconds (the step for Occurrences); a slice
--                  (ts_utc - slice, ts_utc] is labelled by its END, like a step
--   $method        Occurrences: events as they are (bad, total);
--                  Timeslices: a slice with events is 1 slice, bad when its SLI
--                  (total - bad) / total < $slice_target;
--                  RatioTimeslices: a slice with events is 1 slice and adds its
--                  error ratio bad / total (the mean of per-slice ratios)
--   $rollup        add the global group ('*', '*', '*'): events are summed across
--                  groups BEFORE judging, so the global SLI is sum(bad) / sum(total)
--                  (for Timeslices: the global slice's SLI), never a mean of ratios
-- A slice without events (zero traffic) has total 0 and no SLI: it adds nothing to
-- any window.  has_data says the store holds rows for the slice (zero traffic is
-- data; a collection gap is not): the coverage of a window counts these slices.
-- Output: ts_utc, region, model, arm, bad, total, has_data.
WITH events AS (
{events}
),
sliced AS (
    SELECT make_timestamp(CAST(ceil(epoch_us(ts_utc) / ($slice_s * 1000000.0))
                               * $slice_s * 1000000 AS BIGINT)) AS ts_utc,
           coalesce(region, '*') AS region, coalesce(model, '*') AS model,
           coalesce(arm, '*') AS arm,
           sum(bad) AS bad, sum(total) AS total, count(*) AS n_rows
    FROM (SELECT ts_utc, region, model, arm, bad, total FROM events)
    GROUP BY GROUPING SETS ((1, region, model, arm), (1))
    HAVING $rollup OR grouping(region, model, arm) = 0
)
SELECT ts_utc, region, model, arm,
       CASE $method
           WHEN 'Occurrences' THEN bad
           WHEN 'Timeslices' THEN
               CASE WHEN total > 0 AND (total - bad) < $slice_target * total THEN 1.0 ELSE 0.0 END
           WHEN 'RatioTimeslices' THEN CASE WHEN total > 0 THEN bad / total ELSE 0.0 END
       END AS bad,
       CASE WHEN $method = 'Occurrences' THEN total ELSE (total > 0)::DOUBLE END AS total,
       n_rows > 0 AS has_data
FROM sliced
