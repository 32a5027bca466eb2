-- Every arm label of the request data ('' = rows without an arm label), for the
-- sidebar's shared arm filter.
-- The dashboard's sidebar reads the same values cheaply from app/filter_catalogue.py
-- (hourly roll-ups, partition edges); this scan of every minute row is its
-- reference (tests/test_filters_catalogue.py) and the baseline of
-- `bench/page_times.py --catalogue`.
-- Params: none.
SELECT DISTINCT coalesce(arm, '') AS arm
FROM (SELECT DISTINCT arm FROM counters WHERE signal = 'requests')
ORDER BY arm;
