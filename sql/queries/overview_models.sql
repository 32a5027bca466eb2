-- Every model label of the signals the Overview shows ('' = rows without a model
-- label, e.g. GPUs that an exporter does not attribute to a model).
-- (DISTINCT on the bare column first: much faster than on an expression.)
-- The dashboard's sidebar reads the same values cheaply from app/filter_catalogue.py
-- (hourly roll-ups, partition edges); this scan of every minute row is its
-- reference (tests/test_filters_catalogue.py) and the baseline of
-- `bench/page_times.py --catalogue`.
-- Params: none.
SELECT DISTINCT coalesce(model, '') AS model
FROM (
    SELECT DISTINCT model FROM counters
    WHERE signal IN ('requests', 'errors', 'energy', 'prompt_tokens', 'generation_tokens')
    UNION ALL
    SELECT DISTINCT model FROM gauges WHERE signal IN ('gpu_utilization', 'cost')
    UNION ALL
    SELECT DISTINCT model FROM histograms WHERE signal = 'latency'
)
ORDER BY model;
