"""OGBench-format manipulation *play* datasets generated locally, for machines that cannot download OGBench's, by
OGBench's protocol (``data_gen_scripts/generate_manipspace.py``, ``dataset_type='play'``). Every episode is seeded
from ``(seed, split, episode index, attempt)`` alone: the same data whatever the workers.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import warnings
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import count, islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rql_lightning.data.dataset_checks import DataConfigError, npz_headers
from rql_lightning.errors import silence_unactionable_warnings
from rql_lightning.file_writes import WriteRefusedError, refusal, write_atomically
from rql_lightning.naming import NPZ_SUFFIX, dataset_env_name, dataset_file, shard_path, val_path_of

SUPPORTED_DATASETS: tuple[str, ...] = (
    "cube-single-play-v0",
    "cube-double-play-v0",
    "cube-triple-play-v0",
    "cube-quadruple-play-v0",
    "scene-play-v0",
    "puzzle-3x3-play-v0",
    "puzzle-4x4-play-v0",
)

DEFAULT_EPISODE_STEPS = 1001
ORACLE_NOISE = 0.1
ORACLE_NOISE_SMOOTHING = 0.5
ACTION_LOW, ACTION_HIGH = -1.0, 1.0
# Per-episode probability of a stacking target: fixed, or drawn uniformly from a range (other envs: the default).
P_STACK: dict[str, float | tuple[float, float]] = {
    "cube-single": 0.0,
    "cube-double": (0.0, 0.25),
    "cube-triple": (0.05, 0.35),
    "cube-quadruple": (0.1, 0.5),
}
P_STACK_DEFAULT = 0.5
# Scene health check: the cube must stay visible unless it is in the drawer (else goal images are ambiguous).
SCENE_CUBE_QPOS_SLICE = slice(14, 17)
SCENE_MAX_CUBE_Y = 0.29
SCENE_MIN_CUBE_Y = -0.3
SCENE_DRAWER_Z_RANGE = (0.06, 0.08)

SPLIT_TRAIN, SPLIT_VAL = 0, 1
# OGBench's on-disk dtypes: bool terminals, int64 button states, float32 for states and actions (the rest).
SAVED_DTYPES = {"terminals": bool, "button_states": np.int64}


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to collect; the seed key alone determines its content."""

    split: int
    index: int


class EpisodeCollector:
    """Owns one environment and its oracles; collects whole episodes exactly as OGBench's play script does."""

    def __init__(self, dataset_name: str, seed: int, max_episode_steps: int) -> None:
        import gymnasium
        import ogbench.manipspace  # noqa: F401  (registers the manipspace environments)
        from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
        from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
        from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
        from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

        env_name = dataset_env_name(dataset_name)  # cube-single-play-v0 -> its gymnasium id cube-single-v0
        self._env_name = env_name
        self._seed = seed
        self._env = gymnasium.make(
            env_name, terminate_at_goal=False, mode="data_collection", max_episode_steps=max_episode_steps
        )
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
        p_stack = P_STACK.get(self._env_name.rsplit("-", 1)[0], P_STACK_DEFAULT)
        p_stack = float(np.random.uniform(*p_stack)) if isinstance(p_stack, tuple) else p_stack
        agent = self._agents[info["privileged/target_task"]]
        agent.reset(ob, info)

        data: dict[str, list[Any]] = {}
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
            row = dict(observations=ob, actions=action, terminals=done, qpos=info["prev_qpos"], qvel=info["prev_qvel"])
            if "prev_button_states" in info:  # puzzle and scene
                row["button_states"] = info["prev_button_states"]
            for key, value in row.items():
                data.setdefault(key, []).append(value)
            ob = next_ob
        return {k: np.asarray(v, dtype=SAVED_DTYPES.get(k, np.float32)) for k, v in data.items()}

    def collect(self, spec: EpisodeSpec) -> dict[str, np.ndarray]:
        """Roll out one episode, retrying with a fresh seed when the Scene health check rejects it."""
        for attempt in count():
            # One 32-bit seed for the env's RNG and numpy's global one (which the OGBench oracles draw from).
            seq = np.random.SeedSequence(entropy=self._seed, spawn_key=(spec.split, spec.index, attempt))
            episode = self._rollout(int(seq.generate_state(1, dtype=np.uint32)[0]))
            if self._is_healthy(episode["qpos"]):
                return episode


# Episodes queued per worker: keeps workers busy while the parent saves a file, without unbounded buffering.
EPISODES_IN_FLIGHT_PER_WORKER = 4

# Worker-process state: each spawned worker builds one collector in its initializer and reuses it.
_WORKER_COLLECTOR: EpisodeCollector | None = None


def _worker_init(dataset_name: str, seed: int, max_episode_steps: int) -> None:
    global _WORKER_COLLECTOR
    silence_unactionable_warnings()
    _WORKER_COLLECTOR = EpisodeCollector(dataset_name, seed, max_episode_steps)


def _worker_collect(spec: EpisodeSpec) -> dict[str, np.ndarray]:
    return _WORKER_COLLECTOR.collect(spec)


def collect_in_process(
    dataset_name: str, seed: int, max_episode_steps: int, specs: Iterable[EpisodeSpec]
) -> Generator[dict[str, np.ndarray], None, None]:
    """Single-worker path: no subprocess, but the caller's global numpy RNG state is restored afterwards."""
    saved_state = np.random.get_state()
    try:
        with warnings.catch_warnings():
            silence_unactionable_warnings()
            collector = EpisodeCollector(dataset_name, seed, max_episode_steps)
        for spec in specs:
            yield collector.collect(spec)
    finally:
        np.random.set_state(saved_state)


def collect_in_pool(
    dataset_name: str, seed: int, max_episode_steps: int, specs: Iterable[EpisodeSpec], workers: int
) -> Generator[dict[str, np.ndarray], None, None]:
    """Episodes in order from spawned workers (MuJoCo/GL state must not be forked), a bounded number in flight; a
    worker that dies raises ``BrokenProcessPool`` rather than respawning forever."""
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


DEFAULT_VAL_FRACTION = 0.1
_KEPT = "the files finished before it are complete (shards are kept by the next run)"  # after a refused write
_AGAIN = "run the same command again"


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
    max_episode_steps: int = DEFAULT_EPISODE_STEPS,
) -> Path:
    """``save_path``: the ``.npz`` (its ``-val.npz`` beside it), or with ``num_shards > 1`` a directory of shards in
    OGBench's 100M layout (complete ones kept). Counts >= 1: checked by ``rql-data``'s flags and the config schema."""
    if dataset_name not in SUPPORTED_DATASETS:
        raise DataConfigError(
            f"dataset {dataset_name!r} cannot be generated; supported play datasets: {', '.join(SUPPORTED_DATASETS)}"
        )
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
    # Globally numbered train/val episodes, split evenly over the files: (path, specs) in writing order, val first
    # (once the train file exists its companion does too); complete shards kept.
    paths = [save_path] if num_shards == 1 else [shard_path(save_path, dataset_name, i) for i in range(num_shards)]
    writes, next_val = [], 0
    for path, train in zip(paths, np.array_split(np.arange(num_train_episodes), num_shards), strict=True):
        val = [EpisodeSpec(SPLIT_VAL, next_val + i) for i in range(max(1, round(val_fraction * len(train))))]
        next_val += len(val)
        if num_shards == 1 or not (path.exists() and val_path_of(path).exists()):
            writes += [(val_path_of(path), val), (path, [EpisodeSpec(SPLIT_TRAIN, int(i)) for i in train])]
    if num_shards > 1:  # the directory made now, before minutes of collection
        try:
            save_path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise WriteRefusedError(refusal("the shard directory", save_path, err, _KEPT, _AGAIN)) from None

    specs = [spec for _, split_specs in writes for spec in split_specs]
    if not specs:
        return save_path
    workers = min(num_workers, len(specs))
    collect = (dataset_name, seed, max_episode_steps, specs)
    episodes = collect_in_process(*collect) if workers == 1 else collect_in_pool(*collect, workers)
    desc = f"generating {dataset_name}"
    bar = tqdm(total=len(specs) * max_episode_steps, unit="step", unit_scale=True, desc=desc, disable=not progress)
    try:
        # Each file written as soon as its episodes are in, whole or not at all: readers never see half a dataset.
        for path, split_specs in writes:
            chunk = []
            for _ in split_specs:
                chunk.append(next(episodes))
                bar.update(len(chunk[-1]["terminals"]))
            arrays = {key: np.concatenate([ep[key] for ep in chunk]) for key in chunk[0]}
            write_atomically(
                path,
                lambda f, arrays=arrays: np.savez_compressed(f, **arrays),
                what="the generated data file",
                state=lambda: _KEPT,
                then=_AGAIN,
            )
    finally:
        episodes.close()  # runs the generator's cleanup now (RNG restore / pool shutdown), not at GC time
        bar.close()
    return save_path


def ensure_play_dataset(dataset_name: str, data_dir: str | Path, num_transitions: int, num_workers: int = 1) -> Path:
    """``<data_dir>/<dataset_name>.npz``, generated (with its ``-val.npz``) only if either is missing: keyed by name,
    an existing file (maybe OGBench's own) is trusted, with a warning if it holds fewer transitions than requested."""
    path = dataset_file(data_dir, dataset_name)
    if path.exists() and val_path_of(path).exists():
        available = npz_headers(path)["terminals"][0][0]
        if available < num_transitions:
            warnings.warn(
                f"{path} holds {available} transitions, fewer than the {num_transitions} requested; "
                "delete it to regenerate",
                stacklevel=2,
            )
        return path
    return generate_play_dataset(dataset_name, path, num_transitions, num_workers=num_workers)
