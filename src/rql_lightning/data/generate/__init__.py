"""Local generation of OGBench-format manipulation *play* datasets, for machines that cannot download OGBench's.

Re-creates OGBench's collection protocol with the oracles shipped in ``ogbench``: :mod:`.play_protocol` (the oracles,
episodes in order, in process or from workers) <- :mod:`.files` (which episodes go in which file, the cache).
Every episode is seeded from ``(seed, split, episode index, attempt)`` alone: the same data whatever the workers.
"""

from rql_lightning.data.generate.files import DEFAULT_VAL_FRACTION, ensure_play_dataset, generate_play_dataset
from rql_lightning.data.generate.play_protocol import DEFAULT_EPISODE_STEPS, SUPPORTED_DATASETS

__all__ = [
    "DEFAULT_EPISODE_STEPS",
    "DEFAULT_VAL_FRACTION",
    "SUPPORTED_DATASETS",
    "ensure_play_dataset",
    "generate_play_dataset",
]
