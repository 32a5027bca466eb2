-- Drift: histogram bucket sums per region, model, arm, bucket bound and time slice.
-- Slices count back from $origin (right-closed, like ts_utc): slice k holds the
-- steps with ts_utc in ($origin - (k+1) x $slice_s, $origin - k x $slice_s], so
-- slice 0 ends at $origin.  Values are summed per-step increases of the cumulative
-- le buckets (le = +Infinity for +Inf); analytics.drift de-cumulates them.
-- Params: $signal (a histogram signal), $start, $end (TIMESTAMP, UTC; rows in
-- ($start, $end]), $origin (TIMESTAMP, >= $end), $slice_s (seconds),
-- $regions, $models (VARCHAR[] or NULL for all).
-- Output: region, model, arm, le, slice, value.
SELECT region,
       coalesce(model, '') AS model,
       coalesce(arm, '') AS arm,
       le,
       (epoch_us($origin::TIMESTAMP) - epoch_us(ts_utc)) // ($slice_s::BIGINT * 1000000) AS slice,
       sum(value) AS value
FROM histograms
WHERE signal = $signal
  AND ts_utc > $start AND ts_utc <= $end
  AND ($regions IS NULL OR list_contains($regions, region))
  AND ($models IS NULL OR list_contains($models, model))
GROUP BY ALL
ORDER BY region, model, arm, slice, le;
