-- Headline counters per region: sums of exact per-step increases in ($start, $end].
-- requests and errors in requests, energy_j in joules, tokens in tokens.
-- {{rows:<table>:<signals>}} is filled by Store.named (observatory/store/, window_rows)
-- with the rows of ($start, $end]: whole hours from the exact hourly roll-ups, whole
-- 5-minute periods from the 5-minute roll-ups, the 5-minute periods a window edge
-- cuts and partitions without a fresh roll-up from minute rows; ts_utc is a step end
-- or a period end (docs/architecture.md, "Hourly roll-up").
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[];
--         '' = rows without that label); $all_arms (VARCHAR[]): every arm the
--         filter knows; a row whose arm it does not know (e.g. GPU gauges without
--         an arm label) is kept, as the filter cannot deselect it.
SELECT
    region,
    coalesce(sum(value) FILTER (WHERE signal = 'requests'), 0) AS requests,
    coalesce(sum(value) FILTER (WHERE signal = 'errors'), 0) AS errors,
    sum(value) FILTER (WHERE signal = 'energy') AS energy_j,
    sum(value) FILTER (WHERE signal = 'prompt_tokens') AS prompt_tokens,
    sum(value) FILTER (WHERE signal = 'generation_tokens') AS generation_tokens
FROM {{rows:counters:requests,errors,energy,prompt_tokens,generation_tokens}}
WHERE list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY region
ORDER BY region;
