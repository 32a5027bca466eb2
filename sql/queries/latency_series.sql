-- Latency histogram buckets of one signal per series and time bucket (downsampled
-- here: at most ($end - $start) / $bucket_s points per series). A series is a
-- region or a model ($split). Buckets are right-closed, (bucket_end - $bucket_s,
-- bucket_end], aligned to the Unix epoch, like overview_series_counters.
-- value: observations <= le (le in seconds), summed over the bucket's steps.
-- Params: $signal (VARCHAR: latency, ttft, itl); $split (VARCHAR: region | model);
--         $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]);
--         $bucket_s (INTEGER, seconds).
SELECT
    CASE WHEN $split = 'model' THEN coalesce(model, '') ELSE region END AS series,
    make_timestamp(((epoch_us(ts_utc) + $bucket_s::BIGINT * 1000000 - 1) // ($bucket_s::BIGINT * 1000000))
                   * ($bucket_s::BIGINT * 1000000)) AS bucket_end,
    le,
    sum(value) AS value
FROM histograms
WHERE signal = $signal
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND list_contains($arms, coalesce(arm, ''))
GROUP BY ALL
ORDER BY series, bucket_end, le;
