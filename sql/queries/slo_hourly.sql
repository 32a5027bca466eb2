-- Per-hour sums of an SLO's judged slices: the rows of the SLO slice cache
-- (observatory/slo_cache.py, docs/slo.md "Slice cache").
-- {slices} is slo_slices.sql over the steps ($start, $end] (filled in by the engine).
-- $start and $end lie on whole hours and the slice length divides an hour, so each
-- slice ending in ($start, $end] is whole (all its steps are read) and lies in one
-- hour (hour_utc - 1h, hour_utc].
-- Output: hour_utc (END of the hour), region, model, arm, bad, total (sums of the
-- slices' judged values) and slices (how many of them the store holds rows for).
WITH slices AS (
{slices}
)
SELECT make_timestamp((epoch_us(ts_utc) + 3599999999) // 3600000000 * 3600000000) AS hour_utc,
       region, model, arm,
       sum(bad) AS bad, sum(total) AS total,
       count(*) FILTER (WHERE has_data) AS slices
FROM slices
WHERE ts_utc > $start AND ts_utc <= $end
GROUP BY ALL
