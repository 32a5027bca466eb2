-- Latency histogram buckets per signal (latency, TTFT, inter-token latency), region
-- and model over ($start, $end]: value = observations <= le (le in seconds). The
-- percentiles are computed from these sums (analytics/latency.py).
-- {{rows:<table>:<signals>}} is filled by Store.named (observatory/store/, window_rows)
-- with the rows of ($start, $end]: whole hours from the exact hourly roll-ups, whole
-- 5-minute periods from the 5-minute roll-ups, the 5-minute periods a window edge
-- cuts and partitions without a fresh roll-up from minute rows; ts_utc is a step end
-- or a period end (docs/architecture.md, "Hourly roll-up").
-- Params: $start, $end (TIMESTAMP, UTC); $regions, $models, $arms (VARCHAR[]).
SELECT signal, region, coalesce(model, '') AS model, le, sum(value) AS value
FROM {{rows:histograms:latency,ttft,itl}}
WHERE list_contains($regions, region)
  AND list_contains($models, coalesce(model, ''))
  AND list_contains($arms, coalesce(arm, ''))
GROUP BY ALL
ORDER BY signal, region, model, le;
