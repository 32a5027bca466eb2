-- Requests and errors per region and time bucket. A bucket is right-closed like a
-- step, (bucket_end - $bucket_s, bucket_end], aligned to the Unix epoch; a step
-- belongs to the bucket that holds its end ts_utc.
-- {{rows:<table>:<signals>}} is filled by Store.named (observatory/store/, window_rows)
-- with the rows of ($start, $end]: whole hours from the exact hourly roll-ups, whole
-- 5-minute periods from the 5-minute roll-ups, the 5-minute periods a window edge
-- cuts and partitions without a fresh roll-up from minute rows; ts_utc is a step end
-- or a period end (docs/architecture.md, "Hourly roll-up"). Only tiers whose period
-- divides $bucket_s are used (5-minute buckets: no hours; 1-minute: minute rows).
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[];
--         '' = rows without that label); $all_arms (VARCHAR[]): every arm the
--         filter knows; a row whose arm it does not know (e.g. GPU gauges without
--         an arm label) is kept, as the filter cannot deselect it;
--         $bucket_s (INTEGER, seconds).
SELECT
    region,
    make_timestamp(((epoch_us(ts_utc) + $bucket_s::BIGINT * 1000000 - 1) // ($bucket_s::BIGINT * 1000000))
                   * ($bucket_s::BIGINT * 1000000)) AS bucket_end,
    coalesce(sum(value) FILTER (WHERE signal = 'requests'), 0) AS requests,
    coalesce(sum(value) FILTER (WHERE signal = 'errors'), 0) AS errors
FROM {{rows:counters:requests,errors}}
WHERE list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY ALL
ORDER BY region, bucket_end;
