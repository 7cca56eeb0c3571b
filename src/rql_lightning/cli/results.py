"""``rql-results`` (being moved here from ``rql_lightning.results``)."""

from rql_lightning.results import main

__all__ = ["main"]
