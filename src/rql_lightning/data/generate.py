"""Local generation of OGBench-format manipulation *play* datasets.

OGBench's play data comes from scripted, non-Markovian plan oracles with temporally correlated action
noise. Offline machines cannot download it, so this module re-creates it with the oracles shipped inside
the ``ogbench`` package, following OGBench's own collection protocol (environment settings, noise,
per-environment cube stacking probabilities, the Scene health check, saved keys and dtypes, and the
``-val.npz`` companion file). The output loads with ``ogbench.make_env_and_datasets(..., dataset_path=...)``.

Reproducibility: every episode is seeded from ``(seed, split, episode index, attempt)`` alone, so the data
is the same for a fixed seed whatever the number of worker processes or shards.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import tempfile
import warnings
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "DEFAULT_EPISODE_STEPS",
    "SUPPORTED_DATASETS",
    "ensure_play_dataset",
    "generate_play_dataset",
    "play_dataset_env_name",
    "quiet_sim_warnings",
]

SUPPORTED_DATASETS: tuple[str, ...] = (
    "cube-single-play-v0",
    "cube-double-play-v0",
    "cube-triple-play-v0",
    "cube-quadruple-play-v0",
    "scene-play-v0",
    "puzzle-3x3-play-v0",
    "puzzle-4x4-play-v0",
)

# OGBench's collection protocol (data_gen_scripts/generate_manipspace.py, dataset_type='play').
DEFAULT_EPISODE_STEPS = 1001
ORACLE_NOISE = 0.1
ORACLE_NOISE_SMOOTHING = 0.5
ACTION_LOW, ACTION_HIGH = -1.0, 1.0
DEFAULT_VAL_FRACTION = 0.1
# Per-episode probability of a stacking target, drawn uniformly from these ranges (None: fixed value below).
P_STACK_RANGES: dict[str, tuple[float, float]] = {
    "cube-double": (0.0, 0.25),
    "cube-triple": (0.05, 0.35),
    "cube-quadruple": (0.1, 0.5),
}
P_STACK_SINGLE = 0.0
P_STACK_DEFAULT = 0.5
# Scene health check: the cube must stay visible unless it is in the drawer (else goal images are ambiguous).
SCENE_CUBE_QPOS_SLICE = slice(14, 17)
SCENE_MAX_CUBE_Y = 0.29
SCENE_MIN_CUBE_Y = -0.3
SCENE_DRAWER_Z_RANGE = (0.06, 0.08)

SPLIT_TRAIN, SPLIT_VAL = 0, 1
VAL_SUFFIX = "-val.npz"
SHARD_INDEX_WIDTH = 3
# Episodes queued per worker: keeps workers busy while the parent saves a file, without unbounded buffering.
EPISODES_IN_FLIGHT_PER_WORKER = 4

FLOAT_KEYS = ("observations", "actions", "qpos", "qvel")


@dataclass(frozen=True)
class _EpisodeSpec:
    """One episode to collect; the seed key alone determines its content."""

    split: int
    index: int


@dataclass(frozen=True)
class _FileSpec:
    """One ``.npz`` pair (train file + ``-val.npz``) and the episodes that go into each."""

    path: Path
    train: tuple[_EpisodeSpec, ...]
    val: tuple[_EpisodeSpec, ...]


def play_dataset_env_name(dataset_name: str) -> str:
    """Map ``cube-single-play-v0`` to its gymnasium id ``cube-single-v0`` (ids omit the dataset type)."""
    _check_name(dataset_name)
    return dataset_name.replace("-play-", "-")


def _check_name(dataset_name: str) -> None:
    if dataset_name not in SUPPORTED_DATASETS:
        raise ValueError(
            f"Unsupported dataset {dataset_name!r}; supported play datasets: {', '.join(SUPPORTED_DATASETS)}"
        )


def _val_path(path: Path) -> Path:
    return path.with_name(path.name[: -len(".npz")] + VAL_SUFFIX)


def _episode_seed(seed: int, spec: _EpisodeSpec, attempt: int) -> int:
    """32-bit seed for both the env's RNG and numpy's global RNG (which the OGBench oracles draw from)."""
    seq = np.random.SeedSequence(entropy=seed, spawn_key=(spec.split, spec.index, attempt))
    return int(seq.generate_state(1, dtype=np.uint32)[0])


class _EpisodeCollector:
    """Owns one environment and its oracles; collects whole episodes exactly as OGBench's play script does."""

    def __init__(self, dataset_name: str, seed: int, max_episode_steps: int) -> None:
        import gymnasium
        import ogbench.manipspace  # noqa: F401  (registers the manipspace environments)
        from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
        from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
        from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
        from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

        env_name = play_dataset_env_name(dataset_name)
        self._env_name = env_name
        self._seed = seed
        self._env = gymnasium.make(
            env_name, terminate_at_goal=False, mode="data_collection", max_episode_steps=max_episode_steps
        )
        self._has_button_states = hasattr(self._env.unwrapped, "_cur_button_states")
        noise = dict(noise=ORACLE_NOISE, noise_smoothing=ORACLE_NOISE_SMOOTHING)
        if env_name.startswith("cube"):
            self._agents = {"cube": CubePlanOracle(env=self._env, **noise)}
        elif env_name.startswith("scene"):
            self._agents = {
                "cube": CubePlanOracle(env=self._env, **noise),
                "button": ButtonPlanOracle(env=self._env, **noise),
                "drawer": DrawerPlanOracle(env=self._env, **noise),
                "window": WindowPlanOracle(env=self._env, **noise),
            }
        else:  # puzzle: buttons are pressed with a closed gripper.
            self._agents = {"button": ButtonPlanOracle(env=self._env, gripper_always_closed=True, **noise)}

    def _sample_p_stack(self) -> float:
        prefix = self._env_name.rsplit("-", 1)[0]
        if prefix == "cube-single":
            return P_STACK_SINGLE
        if prefix in P_STACK_RANGES:
            return float(np.random.uniform(*P_STACK_RANGES[prefix]))
        return P_STACK_DEFAULT

    def _is_healthy(self, qpos: np.ndarray) -> bool:
        if not self._env_name.startswith("scene"):
            return True
        xyz = qpos[:, SCENE_CUBE_QPOS_SLICE]
        if (xyz[:, 1] >= SCENE_MAX_CUBE_Y).any():
            return False
        outside_drawer = (xyz[:, 2] < SCENE_DRAWER_Z_RANGE[0]) | (xyz[:, 2] > SCENE_DRAWER_Z_RANGE[1])
        return not ((xyz[:, 1] <= SCENE_MIN_CUBE_Y) & outside_drawer).any()

    def _rollout(self, episode_seed: int) -> dict[str, np.ndarray]:
        np.random.seed(episode_seed)
        ob, info = self._env.reset(seed=episode_seed)
        p_stack = self._sample_p_stack()
        agent = self._agents[info["privileged/target_task"]]
        agent.reset(ob, info)

        keys = ["observations", "actions", "terminals", "qpos", "qvel"]
        if self._has_button_states:
            keys.append("button_states")
        data: dict[str, list[Any]] = {k: [] for k in keys}
        done = False
        while not done:
            action = np.clip(np.asarray(agent.select_action(ob, info)), ACTION_LOW, ACTION_HIGH)
            next_ob, _, terminated, truncated, info = self._env.step(action)
            done = bool(terminated or truncated)
            if agent.done:
                # The oracle finished its task: give it a fresh target (OGBench 'play' data never idles).
                agent_ob, agent_info = self._env.unwrapped.set_new_target(p_stack=p_stack)
                agent = self._agents[agent_info["privileged/target_task"]]
                agent.reset(agent_ob, agent_info)
            # The stored state is the one the action was taken in, hence the 'prev_*' step-info entries.
            data["observations"].append(ob)
            data["actions"].append(action)
            data["terminals"].append(done)
            data["qpos"].append(info["prev_qpos"])
            data["qvel"].append(info["prev_qvel"])
            if self._has_button_states:
                data["button_states"].append(info["prev_button_states"])
            ob = next_ob
        return _to_saved_dtypes(data)

    def collect(self, spec: _EpisodeSpec) -> dict[str, np.ndarray]:
        """Roll out one episode, retrying with a fresh seed when the Scene health check rejects it."""
        attempt = 0
        while True:
            episode = self._rollout(_episode_seed(self._seed, spec, attempt))
            if self._is_healthy(episode["qpos"]):
                return episode
            attempt += 1


def _to_saved_dtypes(data: dict[str, list[Any]]) -> dict[str, np.ndarray]:
    """OGBench's on-disk dtypes: float32 for states and actions, bool terminals, int64 button states."""
    out = {}
    for key, values in data.items():
        if key == "terminals":
            dtype: type = bool
        elif key == "button_states":
            dtype = np.int64
        else:
            dtype = np.float32
        out[key] = np.asarray(values, dtype=dtype)
    return out


# Worker-process state: each spawned worker builds one collector in its initializer and reuses it.
_WORKER_COLLECTOR: _EpisodeCollector | None = None


def quiet_sim_warnings() -> None:
    """Silence simulator set-up noise (no GLFW display, Box float32 casts): it says nothing about the data."""
    warnings.filterwarnings("ignore", message=".*DISPLAY.*")
    warnings.filterwarnings("ignore", message=".*precision lowered.*")


def _worker_init(dataset_name: str, seed: int, max_episode_steps: int) -> None:
    global _WORKER_COLLECTOR
    quiet_sim_warnings()
    _WORKER_COLLECTOR = _EpisodeCollector(dataset_name, seed, max_episode_steps)


def _worker_collect(spec: _EpisodeSpec) -> dict[str, np.ndarray]:
    assert _WORKER_COLLECTOR is not None, "worker initializer did not run"
    return _WORKER_COLLECTOR.collect(spec)


def _collect_in_process(
    dataset_name: str, seed: int, max_episode_steps: int, specs: Iterable[_EpisodeSpec]
) -> Generator[dict[str, np.ndarray], None, None]:
    """Single-worker path: no subprocess, but the caller's global numpy RNG state is restored afterwards."""
    saved_state = np.random.get_state()
    try:
        with warnings.catch_warnings():
            quiet_sim_warnings()
            collector = _EpisodeCollector(dataset_name, seed, max_episode_steps)
        for spec in specs:
            yield collector.collect(spec)
    finally:
        np.random.set_state(saved_state)


def _save_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write to a temp file in the target directory, then rename: readers never see a half-written dataset."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


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
) -> list[_FileSpec]:
    """Assign globally numbered train/val episodes to output files (one file, or one per shard)."""
    if num_shards == 1:
        paths = [save_path]
    else:
        paths = [save_path / f"{dataset_name}-{i:0{SHARD_INDEX_WIDTH}d}.npz" for i in range(num_shards)]
    files = []
    next_train = next_val = 0
    for path, n_train in zip(paths, _split_evenly(num_train_episodes, num_shards), strict=True):
        n_val = max(1, round(val_fraction * n_train))
        train = tuple(_EpisodeSpec(SPLIT_TRAIN, next_train + i) for i in range(n_train))
        val = tuple(_EpisodeSpec(SPLIT_VAL, next_val + i) for i in range(n_val))
        next_train += n_train
        next_val += n_val
        files.append(_FileSpec(path, train, val))
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
    _check_name(dataset_name)
    if num_transitions < 0:
        raise ValueError(f"num_transitions must be >= 0, got {num_transitions}")
    if num_workers < 1 or num_shards < 1 or max_episode_steps < 1:
        raise ValueError("num_workers, num_shards and max_episode_steps must all be >= 1")
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError(f"val_fraction must be in [0, 1], got {val_fraction}")
    save_path = Path(save_path).expanduser()
    if num_shards == 1 and save_path.suffix != ".npz":
        raise ValueError(f"save_path must end with '.npz' (got {save_path}); for shards pass num_shards > 1")

    num_train_episodes = max(1, math.ceil(num_transitions / max_episode_steps))
    if num_shards > num_train_episodes:
        raise ValueError(
            f"num_shards={num_shards} exceeds the {num_train_episodes} train episodes; "
            "request more transitions or fewer shards"
        )
    files = _plan_files(dataset_name, save_path, num_train_episodes, num_shards, val_fraction)
    if num_shards > 1 and resume:
        files = [f for f in files if not (f.path.exists() and _val_path(f.path).exists())]
    if num_shards > 1:
        save_path.mkdir(parents=True, exist_ok=True)

    specs = [spec for f in files for spec in (*f.train, *f.val)]
    if specs:
        _run_collection(dataset_name, seed, max_episode_steps, num_workers, progress, files, specs)
    return save_path


def _collect_in_pool(
    dataset_name: str, seed: int, max_episode_steps: int, specs: Iterable[_EpisodeSpec], workers: int
) -> Generator[dict[str, np.ndarray], None, None]:
    """Yield episodes in order from spawned workers, with a bounded number in flight (bounded memory).

    ``ProcessPoolExecutor`` rather than ``multiprocessing.Pool``: a worker that dies or fails to initialise
    raises ``BrokenProcessPool`` here instead of being respawned forever. 'spawn' because MuJoCo/GL state must
    not be inherited through fork (so scripts calling this need the ``if __name__ == "__main__":`` guard).
    """
    context = mp.get_context("spawn")
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_worker_init, initargs=(dataset_name, seed, max_episode_steps)
    )
    try:
        todo = iter(specs)
        pending: deque[Future[dict[str, np.ndarray]]] = deque(
            pool.submit(_worker_collect, spec) for spec in islice(todo, workers * EPISODES_IN_FLIGHT_PER_WORKER)
        )
        while pending:
            episode = pending.popleft().result()
            for spec in islice(todo, 1):
                pending.append(pool.submit(_worker_collect, spec))
            yield episode
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_collection(
    dataset_name: str,
    seed: int,
    max_episode_steps: int,
    num_workers: int,
    progress: bool,
    files: list[_FileSpec],
    specs: list[_EpisodeSpec],
) -> None:
    """Stream episodes in order (from this process or workers); write each file as soon as it is complete."""
    workers = min(num_workers, len(specs))
    if workers == 1:
        episodes = _collect_in_process(dataset_name, seed, max_episode_steps, specs)
    else:
        episodes = _collect_in_pool(dataset_name, seed, max_episode_steps, specs, workers)
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
    files: list[_FileSpec],
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
        _save_npz_atomic(_val_path(file.path), collected["val"])
        _save_npz_atomic(file.path, collected["train"])


def ensure_play_dataset(
    dataset_name: str,
    data_dir: str | Path,
    num_transitions: int,
    seed: int = 0,
    num_workers: int = 1,
) -> Path:
    """Return ``<data_dir>/<dataset_name>.npz``, generating it and its ``-val.npz`` only if either is missing.

    The cache is keyed by file name only: an existing file is trusted (it may be OGBench's own download),
    with a warning if it holds fewer transitions than requested. Delete it to regenerate.
    """
    path = Path(data_dir).expanduser() / f"{dataset_name}.npz"
    if path.exists() and _val_path(path).exists():
        with np.load(path) as data:
            available = len(data["terminals"])
        if available < num_transitions:
            warnings.warn(
                f"{path} holds {available} transitions, fewer than the {num_transitions} requested; "
                "delete it to regenerate",
                stacklevel=2,
            )
        return path
    return generate_play_dataset(dataset_name, path, num_transitions, seed=seed, num_workers=num_workers)
