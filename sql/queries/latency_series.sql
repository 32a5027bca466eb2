-- Latency histogram buckets of one signal per series and time bucket (downsampled
-- here: at most ($end - $start) / $bucket_s points per series). A series is a
-- region or a model ($split). Buckets are right-closed, (bucket_end - $bucket_s,
-- bucket_end], aligned to the Unix epoch, like overview_series_counters.
-- value: observations <= le (le in seconds), summed over the bucket's steps.
-- {{rows:<table>:<signals>}} is filled by Store.named (observatory/store/, window_rows)
-- with the rows of ($start, $end]: whole hours from the exact hourly roll-ups, whole
-- 5-minute periods from the 5-minute roll-ups, the 5-minute periods a window edge
-- cuts and partitions without a fresh roll-up from minute rows; ts_utc is a step end
-- or a period end (docs/architecture.md, "Hourly roll-up"). Only tiers whose period
-- divides $bucket_s are used (5-minute buckets: no hours; 1-minute: minute rows).
-- Params: $signal (VARCHAR: latency, ttft, itl); $split (VARCHAR: region | model);
--         $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]);
--         $bucket_s (INTEGER, seconds).
SELECT
    CASE WHEN $split = 'model' THEN coalesce(model, '') ELSE region END AS series,
    make_timestamp(((epoch_us(ts_utc) + $bucket_s::BIGINT * 1000000 - 1) // ($bucket_s::BIGINT * 1000000))
                   * ($bucket_s::BIGINT * 1000000)) AS bucket_end,
    le,
    sum(value) AS value
FROM {{rows:histograms:$signal}}
WHERE list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND list_contains($arms, coalesce(arm, ''))
GROUP BY ALL
ORDER BY series, bucket_end, le;
