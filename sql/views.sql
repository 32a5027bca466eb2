-- The views every reader uses (dashboard, `observatory sql`, your own DuckDB).
-- Placeholders in braces are filled by observatory/store.py with the lake's
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
