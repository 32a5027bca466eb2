-- The first and the latest step of request data in the store (UTC, step ends).
-- The Overview anchors its time-range presets at last_ts.
-- Params: none.
SELECT min(ts_utc) AS first_ts, max(ts_utc) AS last_ts
FROM counters
WHERE signal = 'requests';
