-- title: Requests per region per hour
-- Requests, errors, error ratio and mean latency per region and hour;
-- hour_end_utc is the end of the hour (hour_end_utc - 1 hour, hour_end_utc]. The
-- mean divides the latency sum by its own count where the exporter reports one.
SELECT
    date_trunc('hour', ts_utc - INTERVAL 1 microsecond) + INTERVAL 1 hour AS hour_end_utc,
    region,
    sum(requests) AS requests,
    sum(errors) AS errors,
    sum(errors) / nullif(sum(requests), 0) AS error_ratio,
    sum(latency_sum_s)
        / nullif(sum(CASE WHEN latency_count > 0 THEN latency_count ELSE requests END), 0)
        AS mean_latency_s
FROM requests_by_region_minute
GROUP BY ALL
ORDER BY hour_end_utc, region;
