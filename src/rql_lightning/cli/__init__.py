"""The commands a user types: ``rql-train``, ``rql-eval``, ``rql-data``, ``rql-results``.

Each is a thin main that parses, calls the library, and turns a :class:`~rql_lightning.errors.UserError`
into one ``error:`` line and exit code 2.
"""
