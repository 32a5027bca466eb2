-- Models and their arms as the store sees them (to discover experiments from the arm
-- label and to list them): per model and arm, the first and last step with requests
-- (ts_utc = END of the step, UTC), the requests, the regions, and whether the model
-- has an accuracy signal.
--   $start, $end   TIMESTAMP window (start, end], UTC; NULL for all data
WITH acc AS (
    SELECT DISTINCT model FROM gauges
    WHERE signal = 'accuracy'
      AND ($start IS NULL OR ts_utc > $start) AND ($end IS NULL OR ts_utc <= $end)
)
SELECT c.model, c.arm,
       min(c.ts_utc) AS first_ts, max(c.ts_utc) AS last_ts,
       sum(c.value) AS requests,
       list(DISTINCT c.region ORDER BY c.region) AS regions,
       bool_or(acc.model IS NOT NULL) AS has_accuracy
FROM counters c LEFT JOIN acc ON acc.model = c.model
WHERE c.signal = 'requests' AND c.value > 0
  AND c.arm IS NOT NULL AND c.arm <> '' AND c.model IS NOT NULL
  AND ($start IS NULL OR c.ts_utc > $start) AND ($end IS NULL OR c.ts_utc <= $end)
GROUP BY c.model, c.arm
ORDER BY c.model, c.arm;
