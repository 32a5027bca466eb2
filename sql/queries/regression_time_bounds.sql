-- Regression detection: the first and last stored step (request counter), UTC.
SELECT min(ts_utc) AS first_utc, max(ts_utc) AS last_utc FROM counters WHERE signal = 'requests';
