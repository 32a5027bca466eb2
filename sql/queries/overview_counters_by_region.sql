-- Headline counters per region: sums of exact per-step increases in ($start, $end].
-- requests and errors in requests, energy_j in joules, tokens in tokens.
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
FROM counters
WHERE signal IN ('requests', 'errors', 'energy', 'prompt_tokens', 'generation_tokens')
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
GROUP BY region
ORDER BY region;
