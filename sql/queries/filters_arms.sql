-- Every arm label of the request data ('' = rows without an arm label), for the
-- sidebar's shared arm filter.
-- Params: none.
SELECT DISTINCT coalesce(arm, '') AS arm
FROM (SELECT DISTINCT arm FROM counters WHERE signal = 'requests')
ORDER BY arm;
