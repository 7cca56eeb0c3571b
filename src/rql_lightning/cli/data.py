"""``rql-data`` (being moved here from ``rql_lightning.data.cli``)."""

from rql_lightning.data.cli import main

__all__ = ["main"]
