-- Regression detection: the per-step counter increases the fleet signals are derived
-- from, as plain numbers (handed over without strings, fast at 1-minute resolution):
-- t (the step's END, epoch seconds), series (hash of region, model, arm; names from
-- regression_series_names), code (position of the signal in the list below) and the
-- step's exact, reset-aware increase.  Binned and summed in analytics.regressions.
-- Codes: 0 requests, 1 errors, 2 energy (J), 3 prompt_tokens, 4 generation_tokens,
--        5 latency_sum (s).
-- Params: $start, $end (TIMESTAMP, UTC; window (start, end]); $regions (VARCHAR[]; empty = all).
SELECT
    epoch(ts_utc)::BIGINT AS t,
    hash(region, coalesce(model, ''), coalesce(arm, '')) AS series,
    list_position(['requests', 'errors', 'energy', 'prompt_tokens', 'generation_tokens',
                   'latency_sum'], signal)::TINYINT - 1 AS code,
    value
FROM counters
WHERE signal IN ('requests', 'errors', 'energy', 'prompt_tokens', 'generation_tokens', 'latency_sum')
  AND ts_utc > $start AND ts_utc <= $end
  AND (len($regions) = 0 OR list_contains($regions, region));
