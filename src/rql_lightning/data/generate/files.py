"""Writing a generated dataset: which episodes go in which file, atomic writes, one file or 100M-style shards."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from rql_lightning.data.dataset_checks import DataConfigError
from rql_lightning.data.generate.collect import collect_episodes
from rql_lightning.data.generate.play_protocol import (
    DEFAULT_EPISODE_STEPS,
    SPLIT_TRAIN,
    SPLIT_VAL,
    EpisodeSpec,
    check_dataset_name,
)
from rql_lightning.file_writes import WriteRefusedError, refusal, write_atomically
from rql_lightning.naming import NPZ_SUFFIX, shard_path, val_path_of

DEFAULT_VAL_FRACTION = 0.1
_KEPT = "the files finished before it are complete (shards are kept by the next run)"  # after a refused write
_AGAIN = "run the same command again"


@dataclass(frozen=True)
class FileSpec:
    """One ``.npz`` pair (train file + ``-val.npz``) and the episodes that go into each."""

    path: Path
    train: tuple[EpisodeSpec, ...]
    val: tuple[EpisodeSpec, ...]


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write whole or not at all (:func:`write_atomically`): readers never see a half-written dataset, and a write
    the machine refuses is one line naming the file and the OS error."""
    write_atomically(
        path,
        lambda f: np.savez_compressed(f, **arrays),
        what="the generated data file",
        state=lambda: _KEPT,
        then=_AGAIN,
    )


def _concat(episodes: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {key: np.concatenate([ep[key] for ep in episodes]) for key in episodes[0]}


def _split_evenly(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def _plan_files(
    dataset_name: str,
    save_path: Path,
    num_train_episodes: int,
    num_shards: int,
    val_fraction: float,
) -> list[FileSpec]:
    """Assign globally numbered train/val episodes to output files (one file, or one per shard)."""
    if num_shards == 1:
        paths = [save_path]
    else:
        paths = [shard_path(save_path, dataset_name, i) for i in range(num_shards)]
    files = []
    next_train = next_val = 0
    for path, n_train in zip(paths, _split_evenly(num_train_episodes, num_shards), strict=True):
        n_val = max(1, round(val_fraction * n_train))
        train = tuple(EpisodeSpec(SPLIT_TRAIN, next_train + i) for i in range(n_train))
        val = tuple(EpisodeSpec(SPLIT_VAL, next_val + i) for i in range(n_val))
        next_train += n_train
        next_val += n_val
        files.append(FileSpec(path, train, val))
    return files


def generate_play_dataset(
    dataset_name: str,
    save_path: str | Path,
    num_transitions: int,
    seed: int = 0,
    num_workers: int = 1,
    progress: bool = True,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    *,
    num_shards: int = 1,
    resume: bool = True,
    max_episode_steps: int = DEFAULT_EPISODE_STEPS,
) -> Path:
    """Generate an OGBench-format play dataset with OGBench's scripted plan oracles.

    Layout:
      * ``num_shards == 1``: ``save_path`` is the ``.npz`` file (conventionally ``<dir>/<dataset_name>.npz``);
        its validation split is written beside it as ``<stem>-val.npz``.
      * ``num_shards > 1`` (the layout of OGBench's 100M variants): ``save_path`` is a directory holding
        ``<dataset_name>-000.npz``, ``<dataset_name>-001.npz``, ... and, for each, its
        ``<dataset_name>-NNN-val.npz``, so every shard also loads with OGBench's loader; training code globs
        ``*.npz`` minus ``*-val.npz``. Train episodes are split as evenly as possible across shards. With
        ``resume`` (default), shards whose two files already exist are kept, so a long run can be restarted.

    Episodes have ``max_episode_steps`` steps (OGBench: 1001; smaller values are for quick tests). There are
    ``ceil(num_transitions / max_episode_steps)`` train episodes (at least 1, and at least one per shard)
    and, per file, ``max(1, round(val_fraction * train episodes))`` validation episodes. Work is spread over
    ``num_workers`` spawned processes; the output depends only on ``seed``, not on worker or shard counts.

    Returns:
        The written ``.npz`` path, or the shard directory when ``num_shards > 1``.
    """
    check_dataset_name(dataset_name)
    for key, value in (("num_transitions", num_transitions), ("num_workers", num_workers)):
        if value < 1:
            raise DataConfigError(f"{key}={value} must be >= 1; pass a positive count")
    for key, value in (("num_shards", num_shards), ("max_episode_steps", max_episode_steps)):
        if value < 1:
            raise DataConfigError(f"{key}={value} must be >= 1; pass a positive count")
    if not 0.0 <= val_fraction <= 1.0:
        raise DataConfigError(f"val_fraction={val_fraction} is outside [0, 1]; pass a fraction of train episodes")
    save_path = Path(save_path).expanduser()
    if num_shards == 1 and save_path.suffix != NPZ_SUFFIX:
        raise DataConfigError(f"save_path={save_path} must end with '.npz'; for shards pass num_shards > 1")

    num_train_episodes = max(1, math.ceil(num_transitions / max_episode_steps))
    if num_shards > num_train_episodes:
        raise DataConfigError(
            f"num_shards={num_shards} exceeds the {num_train_episodes} train episodes; "
            "request more transitions or fewer shards"
        )
    files = _plan_files(dataset_name, save_path, num_train_episodes, num_shards, val_fraction)
    if num_shards > 1 and resume:
        files = [f for f in files if not (f.path.exists() and val_path_of(f.path).exists())]
    if num_shards > 1:  # made now, before minutes of collection, so a refusal comes first
        try:
            save_path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WriteRefusedError(refusal("the shard directory", save_path, err, _KEPT, _AGAIN)) from None

    specs = [spec for f in files for spec in (*f.train, *f.val)]
    if specs:
        _run_collection(dataset_name, seed, max_episode_steps, num_workers, progress, files, specs)
    return save_path


def _run_collection(
    dataset_name: str,
    seed: int,
    max_episode_steps: int,
    num_workers: int,
    progress: bool,
    files: list[FileSpec],
    specs: list[EpisodeSpec],
) -> None:
    """Stream episodes in order (from this process or workers); write each file as soon as it is complete."""
    episodes = collect_episodes(dataset_name, seed, max_episode_steps, specs, num_workers)
    bar = tqdm(
        total=len(specs) * max_episode_steps,
        unit="step",
        unit_scale=True,
        desc=f"generating {dataset_name}",
        disable=not progress,
    )
    try:
        _write_files(files, episodes, on_episode=lambda ep: bar.update(len(ep["terminals"])))
    finally:
        episodes.close()  # runs the generator's cleanup now (RNG restore / pool shutdown), not at GC time
        bar.close()


def _write_files(
    files: list[FileSpec],
    episodes: Iterator[dict[str, np.ndarray]],
    on_episode: Callable[[dict[str, np.ndarray]], object],
) -> None:
    for file in files:
        collected = {}
        for split, split_specs in (("train", file.train), ("val", file.val)):
            chunk = []
            for _ in split_specs:
                episode = next(episodes)
                on_episode(episode)
                chunk.append(episode)
            collected[split] = _concat(chunk)
        # Val first: once the train file exists its companion does too (what the cache check relies on).
        _save_npz_atomic(val_path_of(file.path), collected["val"])
        _save_npz_atomic(file.path, collected["train"])
