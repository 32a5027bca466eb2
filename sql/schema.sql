-- Observatory's schema: typed empty tables that stand in for a table of the lake
-- that holds no file yet, so every view exists (and is empty) on a fresh store.
-- Columns and units: docs/schema.md. Times are UTC; ts_utc is the END of a step
-- that covers (ts_utc - step, ts_utc].
CREATE TABLE _empty_counters (
    ts_utc TIMESTAMP, model VARCHAR, arm VARCHAR, instance VARCHAR,
    value DOUBLE, unit VARCHAR, signal VARCHAR, date DATE, region VARCHAR);
CREATE TABLE _empty_gauges (
    ts_utc TIMESTAMP, model VARCHAR, arm VARCHAR, instance VARCHAR,
    mean DOUBLE, max DOUBLE, last DOUBLE, samples INTEGER, step_s INTEGER,
    unit VARCHAR, signal VARCHAR, date DATE, region VARCHAR);
CREATE TABLE _empty_histograms (
    ts_utc TIMESTAMP, model VARCHAR, arm VARCHAR, le DOUBLE,
    value DOUBLE, unit VARCHAR, signal VARCHAR, date DATE, region VARCHAR);
CREATE TABLE _empty_regions (
    region VARCHAR, display_name VARCHAR, latitude DOUBLE, longitude DOUBLE, url VARCHAR);
CREATE TABLE _empty_runs (
    started_utc TIMESTAMP, finished_utc TIMESTAMP, region VARCHAR, status VARCHAR,
    window_start_utc TIMESTAMP, window_end_utc TIMESTAMP, rows BIGINT, error VARCHAR);
-- The hourly roll-ups (lake/counters_hourly, lake/histograms_hourly, lake/gauges_hourly,
-- lake/gpu_steps_hourly; observatory/store/):
-- sums of value and the number of rows summed per hour (hour_utc = the END of
-- (hour_utc - 1 hour, hour_utc]), model, arm (and le), over instances. Not views: the
-- SLO engine reads the fresh ones by file list (Store.hourly_plan).
CREATE TABLE _empty_counters_hourly (
    hour_utc TIMESTAMP, model VARCHAR, arm VARCHAR, value DOUBLE, "rows" BIGINT,
    signal VARCHAR, date DATE, region VARCHAR);
CREATE TABLE _empty_histograms_hourly (
    hour_utc TIMESTAMP, model VARCHAR, arm VARCHAR, le DOUBLE, value DOUBLE, "rows" BIGINT,
    signal VARCHAR, date DATE, region VARCHAR);
-- gauges_hourly: per hour, model, arm and instance, weighted = sum(mean * step_s) and
-- seconds = sum(step_s) over rows with a mean, step_max = max(step_s), max(max),
-- sum(samples), rows, and minutes (bit m: a step in minute m of the hour).
CREATE TABLE _empty_gauges_hourly (
    hour_utc TIMESTAMP, model VARCHAR, arm VARCHAR, instance VARCHAR, weighted DOUBLE,
    seconds BIGINT, step_max INTEGER, max DOUBLE, samples BIGINT, "rows" BIGINT,
    minutes UBIGINT, signal VARCHAR, date DATE, region VARCHAR);
-- The 5-minute tier (lake/counters_5m, lake/histograms_5m, lake/gauges_5m): the same
-- sums per 5-minute period, hour_utc holding the period's END (Store.window_rows).
CREATE TABLE _empty_counters_5m AS SELECT * FROM _empty_counters_hourly;
CREATE TABLE _empty_histograms_5m AS SELECT * FROM _empty_histograms_hourly;
CREATE TABLE _empty_gauges_5m AS SELECT * FROM _empty_gauges_hourly;
-- gpu_steps_hourly: GPU-steps (utilisation and power of one instance and step) per
-- hour, model, arm and whole-percent utilisation pct (observatory/store/, PCT_SQL).
CREATE TABLE _empty_gpu_steps_hourly (
    hour_utc TIMESTAMP, model VARCHAR, arm VARCHAR, pct SMALLINT, util_weighted DOUBLE,
    seconds BIGINT, power_energy_j DOUBLE, power_seconds BIGINT, "rows" BIGINT,
    signal VARCHAR, date DATE, region VARCHAR);
