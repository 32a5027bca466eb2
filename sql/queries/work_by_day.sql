-- Work, energy and serving cost per region, model and UTC day in ($start, $end]:
-- requests, tokens (prompt + generated), energy_j (the GPU energy counter, joules),
-- cost_usd (the cost gauge, USD per hour, integrated: sum(mean * step_s) / 3600) and
-- gpu_cost_usd (the same for the per-GPU price table's gpu_cost signal). A day is
-- right-closed like a step: (day, day + 1 day], labelled by its start date.
-- The GPUs & Energy page sums it over days (per region and model), the Cost & Carbon
-- page over days and over models (app/work_sums.py), so each page reads the window's
-- counter and cost rows once.
-- {{rows:<table>:<signals>}} is filled by Store.named (observatory/store/, window_rows)
-- with the rows of ($start, $end]: whole hours from the exact hourly roll-ups, whole
-- 5-minute periods from the 5-minute roll-ups, the 5-minute periods a window edge
-- cuts and partitions without a fresh roll-up from minute rows; ts_utc is a step end
-- or a period end (docs/architecture.md, "Hourly roll-up").
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]);
--         $all_arms (VARCHAR[]): every arm the filter knows; a row whose arm it
--         does not know (e.g. GPU gauges without an arm label) is kept.
WITH work AS (
    SELECT
        region,
        coalesce(model, '') AS model,
        CAST(ts_utc - INTERVAL 1 microsecond AS DATE) AS day,
        sum(value) FILTER (WHERE signal = 'requests') AS requests,
        sum(value) FILTER (WHERE signal IN ('prompt_tokens', 'generation_tokens')) AS tokens,
        sum(value) FILTER (WHERE signal = 'energy') AS energy_j
    FROM {{rows:counters:requests,prompt_tokens,generation_tokens,energy}}
    WHERE list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
    GROUP BY ALL
), spend AS (
    SELECT
        region,
        coalesce(model, '') AS model,
        CAST(ts_utc - INTERVAL 1 microsecond AS DATE) AS day,
        sum(weighted) FILTER (WHERE signal = 'cost') / 3600.0 AS cost_usd,
        sum(weighted) FILTER (WHERE signal = 'gpu_cost') / 3600.0 AS gpu_cost_usd
    FROM {{rows:gauges:cost,gpu_cost}}
    WHERE list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
    GROUP BY ALL
)
SELECT region, model, day, requests, tokens, energy_j, cost_usd, gpu_cost_usd
FROM work FULL OUTER JOIN spend USING (region, model, day)
ORDER BY region, model, day;
