-- Regression detection: counter signals per region, model, arm and time bin.
-- A bin (bin_end - $bin_s, bin_end] holds the 1-minute steps whose ts_utc (a step's
-- END) lies in it.  Values are exact sums of the stored increases (reset-aware).
-- Params: $start, $end (TIMESTAMP, UTC; window (start, end]); $bin_s (INTEGER, seconds);
--         $regions (VARCHAR[]; empty = all).
SELECT
    make_timestamp(((epoch_us(ts_utc) + $bin_s::BIGINT * 1000000 - 1) // ($bin_s::BIGINT * 1000000))
                   * ($bin_s::BIGINT * 1000000)) AS bin_end,
    region,
    coalesce(model, '') AS model,
    coalesce(arm, '') AS arm,
    signal,
    sum(value) AS value
FROM counters
WHERE signal IN ('requests', 'errors', 'energy', 'prompt_tokens', 'generation_tokens')
  AND ts_utc > $start AND ts_utc <= $end
  AND (len($regions) = 0 OR list_contains($regions, region))
GROUP BY ALL;
