-- The Overview's counters in one read: per region and time bucket, the sums of exact
-- per-step increases in ($start, $end] of overview_counters_by_region's signals
-- (requests, errors in requests; energy_j in joules; tokens), and series_rows, the
-- rows of requests and errors summed (0: the bucket has only other signals).  The
-- page sums the buckets per region for the headline, the map and the table
-- (app/work_sums.py overview_by_region: the sums of overview_counters_by_region,
-- integer counts exactly, float sums to the order of additions) and draws the
-- buckets with series_rows > 0 (the rows of overview_series_counters): one read of
-- the window's counter rows and edges instead of two.
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
    coalesce(sum(value) FILTER (WHERE signal = 'errors'), 0) AS errors,
    sum(value) FILTER (WHERE signal = 'energy') AS energy_j,
    sum(value) FILTER (WHERE signal = 'prompt_tokens') AS prompt_tokens,
    sum(value) FILTER (WHERE signal = 'generation_tokens') AS generation_tokens,
    count(*) FILTER (WHERE signal IN ('requests', 'errors')) AS series_rows
FROM {{rows:counters:requests,errors,energy,prompt_tokens,generation_tokens}}
WHERE list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY ALL
ORDER BY region, bucket_end;
