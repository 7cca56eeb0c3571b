"""The commands a user types (``rql-train``, ``rql-eval``, ``rql-data``, ``rql-results``): thin mains whose
:class:`~rql_lightning.errors.UserError` is one ``error:`` line and exit code 2."""
