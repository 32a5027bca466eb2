-- Regression detection: per-step increases of the request-latency histogram buckets,
-- as plain numbers: t (step END, epoch seconds), series (hash of region, model, arm),
-- le (bucket upper bound in seconds, +Infinity for +Inf) and the increase.  Summed per
-- bin and pooled for the p99 in analytics.regressions.
-- Params: $start, $end (TIMESTAMP, UTC); $regions (VARCHAR[]).
SELECT
    epoch(ts_utc)::BIGINT AS t,
    hash(region, coalesce(model, ''), coalesce(arm, '')) AS series,
    le,
    value
FROM histograms
WHERE signal = 'latency'
  AND ts_utc > $start AND ts_utc <= $end
  AND (len($regions) = 0 OR list_contains($regions, region));
