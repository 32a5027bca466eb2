-- The first and the latest step of request data in the store (UTC, step ends).
-- The time-range presets are anchored at last_ts.
-- The dashboard's sidebar reads the same values cheaply from app/filter_catalogue.py
-- (hourly roll-ups, partition edges); this scan of every minute row is its
-- reference (tests/test_filters_catalogue.py) and the baseline of
-- `bench/page_times.py --catalogue`.
-- Params: none.
SELECT min(ts_utc) AS first_ts, max(ts_utc) AS last_ts
FROM counters
WHERE signal = 'requests';
