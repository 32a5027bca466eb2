-- Experiment replicates: one row per step (ts_utc = END of the step, UTC), region and
-- arm of one model, with the arm's aggregates over that step.  These per-minute
-- aggregates are the units the A/B statistics treat as independent (requests inside
-- a minute share batches, GPUs and load; analytics/experiment_metrics.py says why).
--   $model   the model whose arms are compared
--   $arms    VARCHAR[]: the arms
--   $start, $end   TIMESTAMP window (start, end], UTC
--   $regions VARCHAR[] or NULL for every region
-- Output: ts_utc, region, arm, requests, errors, latency_sum (s), tokens (prompt +
-- generated), energy_j (J), cost_usd (USD: the cost gauge in USD/h x step / 3600,
-- summed over nodes), accuracy (0-1, mean over instances of the step's gauge mean).
WITH c AS (
    SELECT ts_utc, region, arm,
           sum(value) FILTER (WHERE signal = 'requests') AS requests,
           sum(value) FILTER (WHERE signal = 'errors') AS errors,
           sum(value) FILTER (WHERE signal = 'latency_sum') AS latency_sum,
           sum(value) FILTER (WHERE signal IN ('prompt_tokens', 'generation_tokens')) AS tokens,
           sum(value) FILTER (WHERE signal = 'energy') AS energy_j
    FROM counters
    WHERE signal IN ('requests', 'errors', 'latency_sum', 'prompt_tokens',
                     'generation_tokens', 'energy')
      AND model = $model AND list_contains($arms, arm)
      AND ts_utc > $start AND ts_utc <= $end
      AND ($regions IS NULL OR list_contains($regions, region))
    GROUP BY ALL
), g AS (
    SELECT ts_utc, region, arm,
           sum(mean * step_s / 3600.0) FILTER (WHERE signal = 'cost') AS cost_usd,
           avg(mean) FILTER (WHERE signal = 'accuracy') AS accuracy
    FROM gauges
    WHERE signal IN ('cost', 'accuracy')
      AND model = $model AND list_contains($arms, arm)
      AND ts_utc > $start AND ts_utc <= $end
      AND ($regions IS NULL OR list_contains($regions, region))
    GROUP BY ALL
)
SELECT ts_utc, region, arm, c.requests, c.errors, c.latency_sum, c.tokens, c.energy_j,
       g.cost_usd, g.accuracy
FROM c FULL OUTER JOIN g USING (ts_utc, region, arm)
ORDER BY ts_utc, region, arm;
