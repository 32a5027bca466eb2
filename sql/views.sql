-- The views every reader uses (dashboard, `observatory sql`, your own DuckDB).
-- Placeholders in braces are filled by observatory/store/ with the lake's
-- read_parquet(...) call, or with the empty table of schema.sql.

-- counters: exact per-step increases of counter signals (requests, errors,
-- tokens, energy in joules, latency_sum in seconds).
CREATE OR REPLACE VIEW counters AS
SELECT ts_utc, region, signal, model, arm, instance, value, unit FROM {counters};

-- gauges: per-step mean / max / last of gauge samples (GPU utilisation 0-1,
-- power in watts, cost in USD per hour, accuracy 0-1).
CREATE OR REPLACE VIEW gauges AS
SELECT ts_utc, region, signal, model, arm, instance, mean, max, last, samples, step_s, unit
FROM {gauges};

-- histograms: per-step increases of each cumulative bucket; le in the signal's
-- unit (seconds for latency), le = +Infinity for the +Inf bucket.
CREATE OR REPLACE VIEW histograms AS
SELECT ts_utc, region, signal, model, arm, le, value, unit FROM {histograms};

-- regions: the configured regions and where they are on the map.
CREATE OR REPLACE VIEW regions AS
SELECT region, coalesce(display_name, region) AS display_name, latitude, longitude, url
FROM {regions};

-- collection_runs: one row per region per collector run (the run log).
CREATE OR REPLACE VIEW collection_runs AS
SELECT started_utc, finished_utc, region, status, window_start_utc, window_end_utc, rows, error
FROM {runs};

-- ---------------------------------------------------------------------------
-- Convenience views for ad hoc SQL (documented in docs/sql.md; names and columns
-- are stable). Time columns end in _utc and are the END of their bucket:
-- (ts_utc - bucket, ts_utc]. Units are in the column names: _s seconds, _w watts,
-- _kwh kilowatt-hours, _usd US dollars; ratios are 0-1.

-- requests_by_region_minute: requests, errors, latency sum (and its count where the
-- exporter reports one) and tokens per region, model, arm and minute.
CREATE OR REPLACE VIEW requests_by_region_minute AS
SELECT
    date_trunc('minute', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 minute AS ts_utc,
    region,
    model,
    arm,
    coalesce(sum(value) FILTER (WHERE signal = 'requests'), 0) AS requests,
    coalesce(sum(value) FILTER (WHERE signal = 'errors'), 0) AS errors,
    coalesce(sum(value) FILTER (WHERE signal = 'latency_sum'), 0) AS latency_sum_s,
    coalesce(sum(value) FILTER (WHERE signal = 'latency_count'), 0) AS latency_count,
    coalesce(sum(value) FILTER (WHERE signal = 'prompt_tokens'), 0) AS prompt_tokens,
    coalesce(sum(value) FILTER (WHERE signal = 'generation_tokens'), 0) AS generation_tokens
FROM counters
WHERE signal IN (
    'requests', 'errors', 'latency_sum', 'latency_count', 'prompt_tokens', 'generation_tokens'
)
GROUP BY ALL;

-- latency_buckets: the end-to-end latency histogram per step, region, model and arm:
-- requests with latency <= le_s (cumulative buckets, le_s = +Infinity for all).
CREATE OR REPLACE VIEW latency_buckets AS
SELECT ts_utc, region, model, arm, le AS le_s, value AS cumulative_requests
FROM histograms
WHERE signal = 'latency';

-- gpu_by_region_minute: GPU utilisation (0-1, time-weighted mean over instances and
-- steps; the highest sample) and board power (watts, summed over instances).
CREATE OR REPLACE VIEW gpu_by_region_minute AS
SELECT
    date_trunc('minute', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 minute AS ts_utc,
    region,
    model,
    arm,
    sum(mean * step_s) FILTER (WHERE signal = 'gpu_utilization')
        / sum(step_s) FILTER (WHERE signal = 'gpu_utilization') AS gpu_utilization_mean,
    max(max) FILTER (WHERE signal = 'gpu_utilization') AS gpu_utilization_max,
    sum(mean * step_s) FILTER (WHERE signal = 'gpu_power') / 60.0 AS gpu_power_w
FROM gauges
WHERE signal IN ('gpu_utilization', 'gpu_power')
GROUP BY ALL;

-- energy_cost_by_region_hour: GPU energy (kWh), serving cost (USD) and requests per
-- region, model, arm and hour.
CREATE OR REPLACE VIEW energy_cost_by_region_hour AS
WITH energy AS (
    SELECT
        date_trunc('hour', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 hour AS ts_utc,
        region,
        model,
        arm,
        coalesce(sum(value) FILTER (WHERE signal = 'energy'), 0) / 3600000.0 AS energy_kwh,
        coalesce(sum(value) FILTER (WHERE signal = 'requests'), 0) AS requests
    FROM counters
    WHERE signal IN ('energy', 'requests')
    GROUP BY ALL
), cost AS (
    SELECT
        date_trunc('hour', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 hour AS ts_utc,
        region,
        model,
        arm,
        sum(mean * step_s) / 3600.0 AS cost_usd
    FROM gauges
    WHERE signal = 'cost'
    GROUP BY ALL
)
SELECT
    ts_utc,
    region,
    model,
    arm,
    coalesce(energy.energy_kwh, 0) AS energy_kwh,
    coalesce(cost.cost_usd, 0) AS cost_usd,
    coalesce(energy.requests, 0) AS requests
FROM energy FULL OUTER JOIN cost USING (ts_utc, region, model, arm);
