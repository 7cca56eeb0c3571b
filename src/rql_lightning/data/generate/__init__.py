"""Local generation of OGBench-format manipulation *play* datasets.

OGBench's play data comes from scripted, non-Markovian plan oracles with temporally correlated action
noise. Offline machines cannot download it, so this package re-creates it with the oracles shipped
inside the ``ogbench`` package, following OGBench's own collection protocol. The output (a file and
its ``-val.npz``, or a directory of 100M-style shards) loads with
``ogbench.make_env_and_datasets(..., dataset_path=...)``.

One concern per module, imported one way: :mod:`.play_protocol` (the oracles and one episode's content)
<- :mod:`.collect` (episodes in order, in process or from spawned workers) <- :mod:`.files` (which
episodes go in which file, atomic writes) <- :mod:`.cache` (generate once, then trust by name).

Reproducibility: every episode is seeded from ``(seed, split, episode index, attempt)`` alone, so the
data is the same for a fixed seed whatever the number of worker processes or shards.
"""

from rql_lightning.data.generate.cache import ensure_play_dataset
from rql_lightning.data.generate.files import DEFAULT_VAL_FRACTION, generate_play_dataset
from rql_lightning.data.generate.play_protocol import DEFAULT_EPISODE_STEPS, SUPPORTED_DATASETS

__all__ = [
    "DEFAULT_EPISODE_STEPS",
    "DEFAULT_VAL_FRACTION",
    "SUPPORTED_DATASETS",
    "ensure_play_dataset",
    "generate_play_dataset",
]
