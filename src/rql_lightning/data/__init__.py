"""Offline data -> window batches. Imports go one way, never to an algorithm: ``naming`` -> ``dataset_checks`` ->
``windows`` -> ``datamodule`` (the contract; ``ArrayDataModule``) -> sources (``ogbench_datamodule`` with
``shard_schedule``, ``minari_datamodule`` with its exporter). ``generate`` makes play data offline, ``download``
fetches OGBench's files. A new source: docs/architecture.md ("Where a new thing goes").
"""
