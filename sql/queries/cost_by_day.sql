-- Serving cost (USD: the cost gauge, USD per hour, integrated as
-- sum(mean * step_s) / 3600; the gpu_cost signal where no cost signal exists),
-- requests and tokens per region and UTC day in ($start, $end]. A day is
-- right-closed like a step: (day, day + 1 day], labelled by its start date.
-- {{rows:<table>:<signals>}} is filled by Store.named (observatory/store.py, window_rows)
-- with the rows of ($start, $end]: whole hours from the exact hourly roll-ups, whole
-- 5-minute periods from the 5-minute roll-ups, the 5-minute periods a window edge
-- cuts and partitions without a fresh roll-up from minute rows; ts_utc is a step end
-- or a period end (docs/architecture.md, "Hourly roll-up").
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]);
--         $all_arms (VARCHAR[]): every arm the filter knows; a row whose arm it
--         does not know (e.g. GPU gauges without an arm label) is kept.
WITH spend AS (
    SELECT
        region,
        CAST(ts_utc - INTERVAL 1 microsecond AS DATE) AS day,
        coalesce(
            sum(weighted) FILTER (WHERE signal = 'cost') / 3600.0,
            sum(weighted) FILTER (WHERE signal = 'gpu_cost') / 3600.0
        ) AS cost_usd
    FROM {{rows:gauges:cost,gpu_cost}}
    WHERE list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
    GROUP BY ALL
), work AS (
    SELECT
        region,
        CAST(ts_utc - INTERVAL 1 microsecond AS DATE) AS day,
        sum(value) FILTER (WHERE signal = 'requests') AS requests,
        sum(value) FILTER (WHERE signal IN ('prompt_tokens', 'generation_tokens')) AS tokens
    FROM {{rows:counters:requests,prompt_tokens,generation_tokens}}
    WHERE list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND (list_contains($arms, coalesce(arm, '')) OR NOT list_contains($all_arms, coalesce(arm, '')))
    GROUP BY ALL
)
SELECT region, day, cost_usd, requests, tokens
FROM spend FULL OUTER JOIN work USING (region, day)
ORDER BY region, day;
