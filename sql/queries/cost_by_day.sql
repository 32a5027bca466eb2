-- Serving cost (USD: the cost gauge, USD per hour, integrated as
-- sum(mean * step_s / 3600); the gpu_cost signal where no cost signal exists),
-- requests and tokens per region and UTC day in ($start, $end]. A day is
-- right-closed like a step: (day, day + 1 day], labelled by its start date.
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]).
WITH spend AS (
    SELECT
        region,
        CAST(ts_utc - INTERVAL 1 microsecond AS DATE) AS day,
        coalesce(
            sum(mean * step_s / 3600.0) FILTER (WHERE signal = 'cost'),
            sum(mean * step_s / 3600.0) FILTER (WHERE signal = 'gpu_cost')
        ) AS cost_usd
    FROM gauges
    WHERE signal IN ('cost', 'gpu_cost')
      AND ts_utc > $start AND ts_utc <= $end
      AND list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND list_contains($arms, coalesce(arm, ''))
    GROUP BY ALL
), work AS (
    SELECT
        region,
        CAST(ts_utc - INTERVAL 1 microsecond AS DATE) AS day,
        sum(value) FILTER (WHERE signal = 'requests') AS requests,
        sum(value) FILTER (WHERE signal IN ('prompt_tokens', 'generation_tokens')) AS tokens
    FROM counters
    WHERE signal IN ('requests', 'prompt_tokens', 'generation_tokens')
      AND ts_utc > $start AND ts_utc <= $end
      AND list_contains($regions, region)
      AND list_contains($models, coalesce(model, ''))
      AND list_contains($arms, coalesce(arm, ''))
    GROUP BY ALL
)
SELECT region, day, cost_usd, requests, tokens
FROM spend FULL OUTER JOIN work USING (region, day)
ORDER BY region, day;
