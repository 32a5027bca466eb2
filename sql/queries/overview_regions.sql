-- Every region the Overview can show: the catalogue (with map coordinates) plus any
-- region that has data but no catalogue row (NULL coordinates).
-- Params: none.
WITH with_data AS (
    SELECT DISTINCT region FROM counters WHERE signal = 'requests'
)
SELECT
    coalesce(r.region, d.region) AS region,
    coalesce(r.display_name, d.region) AS display_name,
    r.latitude,
    r.longitude,
    d.region IS NOT NULL AS has_data
FROM regions AS r
FULL OUTER JOIN with_data AS d ON d.region = r.region
ORDER BY region;
