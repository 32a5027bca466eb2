-- Drift: the last step end stored in each table (the default end of a drift window).
-- Output: tbl, last_ts (TIMESTAMP, UTC; NULL for an empty table).
SELECT 'histograms' AS tbl, max(ts_utc) AS last_ts FROM histograms
UNION ALL SELECT 'gauges', max(ts_utc) FROM gauges
UNION ALL SELECT 'counters', max(ts_utc) FROM counters;
