-- title: Energy per request by arm
-- GPU energy per request for each model and arm (A/B test), all regions and the
-- whole store: sum(energy) / sum(requests), in watt-hours and joules per request.
SELECT
    model,
    arm,
    sum(requests) AS requests,
    sum(energy_kwh) AS energy_kwh,
    1000 * sum(energy_kwh) / nullif(sum(requests), 0) AS wh_per_request,
    3600000 * sum(energy_kwh) / nullif(sum(requests), 0) AS joules_per_request
FROM energy_cost_by_region_hour
GROUP BY model, arm
ORDER BY model, arm;
