-- The last collector run of every region (and every catalogue region never
-- collected, with NULL run columns). Times UTC.
-- Params: none.
WITH last_run AS (
    SELECT *
    FROM collection_runs
    QUALIFY row_number() OVER (PARTITION BY region ORDER BY started_utc DESC NULLS LAST) = 1
),
runs AS (
    SELECT region, count(*) AS runs,
           count(*) FILTER (WHERE status = 'failed') AS failed_runs
    FROM collection_runs
    GROUP BY region
)
SELECT
    coalesce(c.region, l.region) AS region,
    c.display_name,
    l.status,
    l.started_utc,
    l.finished_utc,
    l.window_start_utc,
    l.window_end_utc,
    l.rows,
    l.error,
    coalesce(r.runs, 0) AS runs,
    coalesce(r.failed_runs, 0) AS failed_runs
FROM regions AS c
FULL OUTER JOIN last_run AS l ON l.region = c.region
LEFT JOIN runs AS r ON r.region = coalesce(c.region, l.region)
ORDER BY region;
