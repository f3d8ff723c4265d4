"""The SQL target (SQL Server, PostgreSQL, SQLite), one job per module.

* ``dialects`` -- how each engine spells names, types and parameters; the tables and indexes.
* ``reporting_views`` -- the views Power BI imports, with a calendar per engine.
* ``sync_statements`` -- the SQL of one sync's transaction, per engine.
* ``schema`` -- the whole schema as idempotent statements, and its script file.
* ``connections`` -- which engine a connection string names; opening connections.
* ``transient_errors`` -- which errors are worth retrying the transaction for.
* ``warehouse`` -- :class:`SqlWarehouse`, the adapter the sync runs.

(Not ``functions/sql``: .funcignore leaves out every folder named ``sql``.)
"""
