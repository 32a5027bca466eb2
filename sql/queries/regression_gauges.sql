-- Regression detection: gauge signals per region, model, arm and time bin.
-- value: mean over the bin's steps of the per-step mean across instances (accuracy,
-- GPU utilisation, power); for cost the per-step SUM across instances (USD per hour
-- of all nodes serving that model and arm), averaged over the bin.
-- Params: $start, $end (TIMESTAMP, UTC); $bin_s (INTEGER, seconds); $regions (VARCHAR[]).
WITH steps AS (
    SELECT
        ts_utc, region, coalesce(model, '') AS model, coalesce(arm, '') AS arm, signal,
        CASE WHEN signal = 'cost' THEN sum(mean) ELSE avg(mean) END AS value
    FROM gauges
    WHERE signal IN ('accuracy', 'gpu_utilization', 'gpu_power', 'cost')
      AND ts_utc > $start AND ts_utc <= $end
      AND (len($regions) = 0 OR list_contains($regions, region))
    GROUP BY ts_utc, region, coalesce(model, ''), coalesce(arm, ''), signal
)
SELECT
    make_timestamp(((epoch_us(ts_utc) + $bin_s::BIGINT * 1000000 - 1) // ($bin_s::BIGINT * 1000000))
                   * ($bin_s::BIGINT * 1000000)) AS bin_end,
    region, model, arm, signal,
    avg(value) AS value
FROM steps
GROUP BY ALL;
