-- title: Cost per region per day
-- Serving cost (USD) and GPU energy (kWh) per region and UTC day; day_end_utc is
-- the end of the day (day_end_utc - 1 day, day_end_utc]. A day at either end of the
-- store may be partial.
SELECT
    date_trunc('day', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 day AS day_end_utc,
    region,
    sum(cost_usd) AS cost_usd,
    sum(energy_kwh) AS energy_kwh,
    sum(requests) AS requests,
    1000 * sum(cost_usd) / nullif(sum(requests), 0) AS usd_per_1k_requests
FROM energy_cost_by_region_hour
GROUP BY ALL
ORDER BY day_end_utc, region;
