-- Regression detection: the per-step gauge means the fleet signals are derived from,
-- as plain numbers: t (step END, epoch seconds), series (hash of region, model, arm),
-- code and the step's mean for one instance.  Binned in analytics.regressions: the
-- mean over the bin's rows (accuracy, GPU utilisation, power), or for cost the sum over
-- instances per step averaged over the bin's steps (USD per hour of all nodes serving
-- that model and arm).
-- Codes: 0 accuracy, 1 gpu_utilization, 2 gpu_power (W), 3 cost (USD/h).
-- Params: $start, $end (TIMESTAMP, UTC); $regions (VARCHAR[]).
SELECT
    epoch(ts_utc)::BIGINT AS t,
    hash(region, coalesce(model, ''), coalesce(arm, '')) AS series,
    list_position(['accuracy', 'gpu_utilization', 'gpu_power', 'cost'], signal)::TINYINT - 1
        AS code,
    mean AS value
FROM gauges
WHERE signal IN ('accuracy', 'gpu_utilization', 'gpu_power', 'cost')
  AND ts_utc > $start AND ts_utc <= $end
  AND (len($regions) = 0 OR list_contains($regions, region));
