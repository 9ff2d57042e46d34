-- Nothing to change on PostgreSQL: SQLite's 0030 makes the audit log's `seq` the table's own key
-- (a PostgreSQL table is a heap with `seq` in its primary-key index either way). Kept so both
-- engines ship the same list of migrations.
SELECT 1;
