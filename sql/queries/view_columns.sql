-- Every view's columns and DuckDB types, for the SQL page's schema browser: the same
-- rows as observatory.store.SafeSQL.columns() (the sandbox's views are made from the
-- same sql/views.sql over the same sources).
-- Params: none.
SELECT
    table_name AS view,
    column_name AS column,
    data_type AS type,
    column_index AS position
FROM duckdb_columns()
WHERE NOT internal
    AND table_name IN (SELECT view_name FROM duckdb_views() WHERE NOT internal)
ORDER BY view, position;
