-- Work, energy and cost per region and model over ($start, $end]: requests, tokens
-- (prompt + generated), energy_j (the GPU energy counter, joules), cost_usd (the
-- cost gauge, USD per hour, integrated: sum(mean * step_s / 3600)) and gpu_cost_usd
-- (the same for the per-GPU price table's gpu_cost signal).
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]).
WITH work AS (
    SELECT
        region,
        coalesce(model, '') AS model,
        sum(value) FILTER (WHERE signal = 'requests') AS requests,
        sum(value) FILTER (WHERE signal IN ('prompt_tokens', 'generation_tokens')) AS tokens,
        sum(value) FILTER (WHERE signal = 'energy') AS energy_j
    FROM counters
    WHERE signal IN ('requests', 'prompt_tokens', 'generation_tokens', 'energy')
      AND ts_utc > $start AND ts_utc <= $end
      AND list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND list_contains($arms, coalesce(arm, ''))
    GROUP BY ALL
), spend AS (
    SELECT
        region,
        coalesce(model, '') AS model,
        sum(mean * step_s / 3600.0) FILTER (WHERE signal = 'cost') AS cost_usd,
        sum(mean * step_s / 3600.0) FILTER (WHERE signal = 'gpu_cost') AS gpu_cost_usd
    FROM gauges
    WHERE signal IN ('cost', 'gpu_cost')
      AND ts_utc > $start AND ts_utc <= $end
      AND list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND list_contains($arms, coalesce(arm, ''))
    GROUP BY ALL
)
SELECT region, model, requests, tokens, energy_j, cost_usd, gpu_cost_usd
FROM work FULL OUTER JOIN spend USING (region, model)
ORDER BY region, model;
