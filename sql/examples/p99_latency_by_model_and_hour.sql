-- title: p99 latency by model and hour
-- p50 and p99 end-to-end latency per model and hour, computed from the stored
-- histogram buckets exactly as Prometheus's histogram_quantile does: bucket counts
-- are summed over regions and steps, made monotone, and the quantile is interpolated
-- linearly inside the bucket that holds its rank (a rank in the +Inf bucket gives
-- the highest finite bound). It is an estimate whose error is bounded by the bucket
-- width around it: per-request latencies are not stored, so an exact percentile
-- (quantile_cont over raw values) cannot be computed.
WITH buckets AS (
    SELECT
        date_trunc('hour', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 hour AS hour_end_utc,
        model,
        le_s,
        sum(cumulative_requests) AS count
    FROM latency_buckets
    GROUP BY ALL
), monotone AS (
    SELECT
        hour_end_utc, model, le_s,
        max(count) OVER (
            PARTITION BY hour_end_utc, model ORDER BY le_s ROWS UNBOUNDED PRECEDING
        ) AS cum
    FROM buckets
), ranked AS (
    SELECT
        hour_end_utc, model, le_s, cum,
        max(cum) OVER whole AS total,
        max(le_s) FILTER (WHERE isfinite(le_s)) OVER whole AS top_finite_s,
        lag(cum, 1, 0) OVER ordered AS below,
        CASE WHEN row_number() OVER ordered = 1 AND le_s <= 0 THEN le_s
             ELSE lag(le_s, 1, 0) OVER ordered END AS lower_s,
        bool_or(isinf(le_s) AND le_s > 0) OVER whole AS has_inf
    FROM monotone
    WINDOW whole AS (PARTITION BY hour_end_utc, model),
           ordered AS (PARTITION BY hour_end_utc, model ORDER BY le_s)
), quantiles AS (
    SELECT q.q, ranked.*,
        CASE WHEN isinf(le_s) THEN top_finite_s
             WHEN lower_s = le_s THEN le_s
             ELSE lower_s + (le_s - lower_s) * (q.q * total - below) / (cum - below)
        END AS value_s
    FROM ranked, (VALUES (0.5), (0.99)) AS q(q)
    WHERE has_inf AND total > 0 AND cum >= q.q * total
)
SELECT
    hour_end_utc,
    model,
    any_value(total) AS requests,
    arg_min(value_s, le_s) FILTER (WHERE q = 0.5) AS p50_s,
    arg_min(value_s, le_s) FILTER (WHERE q = 0.99) AS p99_s
FROM quantiles
GROUP BY hour_end_utc, model
ORDER BY hour_end_utc, model;
