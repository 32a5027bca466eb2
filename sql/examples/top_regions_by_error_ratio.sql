-- title: Top regions by error ratio
-- Error ratio per region over the last 24 hours of data: sum(errors) / sum(requests),
-- a roll-up of counts (never an average of per-model ratios). burn_rate_999 is the
-- error ratio divided by the error budget of an ASSUMED 99.9 % availability objective
-- (1.0 = spending the budget exactly as fast as allowed); Observatory's SLO views,
-- with the configured objectives, do not exist yet.
WITH span AS (  -- the latest step with data (cheaper on the base view)
    SELECT max(ts_utc) AS end_utc FROM counters WHERE signal = 'requests'
)
SELECT
    region,
    sum(requests) AS requests,
    sum(errors) AS errors,
    sum(errors) / nullif(sum(requests), 0) AS error_ratio,
    sum(errors) / nullif(sum(requests), 0) / 0.001 AS burn_rate_999
FROM requests_by_region_minute, span
WHERE ts_utc > span.end_utc - INTERVAL 24 HOUR AND ts_utc <= span.end_utc
GROUP BY region
ORDER BY error_ratio DESC NULLS LAST;
