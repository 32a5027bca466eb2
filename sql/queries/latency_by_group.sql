-- Latency histogram buckets per signal (latency, TTFT, inter-token latency), region
-- and model over ($start, $end]: value = observations <= le (le in seconds). The
-- percentiles are computed from these sums (analytics/latency.py).
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]).
SELECT signal, region, coalesce(model, '') AS model, le, sum(value) AS value
FROM histograms
WHERE signal IN ('latency', 'ttft', 'itl')
  AND ts_utc > $start AND ts_utc <= $end
  AND list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND list_contains($arms, coalesce(arm, ''))
GROUP BY ALL
ORDER BY signal, region, model, le;
