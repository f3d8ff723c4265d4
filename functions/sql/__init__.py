"""The SQL target, one job per module.

* :mod:`functions.sql.dialects` -- how each engine spells names, types and parameters; tables and indexes.
* :mod:`functions.sql.reporting_views` -- the views Power BI imports, with a calendar per engine.
* :mod:`functions.sql.sync_statements` -- the SQL of one sync's transaction, per engine.
* :mod:`functions.sql.schema` -- the whole schema as idempotent statements, and its script file.
* :mod:`functions.sql.connections` -- which engine a connection string names; opening connections.
* :mod:`functions.sql.transient_errors` -- which errors are worth retrying the transaction for.
* :mod:`functions.sql.warehouse` -- :class:`SqlWarehouse`, the adapter the sync runs.
"""
