-- Regression detection: request-latency histogram buckets per region, model, arm and
-- time bin (per le, in seconds: requests that took <= le), for histogram_quantile.
-- Params: $start, $end (TIMESTAMP, UTC); $bin_s (INTEGER, seconds); $regions (VARCHAR[]).
SELECT
    make_timestamp(((epoch_us(ts_utc) + $bin_s::BIGINT * 1000000 - 1) // ($bin_s::BIGINT * 1000000))
                   * ($bin_s::BIGINT * 1000000)) AS bin_end,
    region,
    coalesce(model, '') AS model,
    coalesce(arm, '') AS arm,
    le,
    sum(value) AS value
FROM histograms
WHERE signal = 'latency'
  AND ts_utc > $start AND ts_utc <= $end
  AND (len($regions) = 0 OR list_contains($regions, region))
GROUP BY ALL;
