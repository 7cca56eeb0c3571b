"""OGBench's play-data collection protocol (``data_gen_scripts/generate_manipspace.py``, ``dataset_type='play'``):
the scripted oracles, their noise, stacking probabilities, the Scene health check, the saved keys and dtypes; and
episodes collected in order, in this process or from spawned workers, with bounded memory."""

from __future__ import annotations

import multiprocessing as mp
import warnings
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from itertools import count, islice
from typing import Any

import numpy as np

from rql_lightning.data.dataset_checks import DataConfigError
from rql_lightning.naming import dataset_env_name

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
# OGBench's on-disk dtypes: bool terminals, int64 button states, float32 for states and actions (the rest).
SAVED_DTYPES = {"terminals": bool, "button_states": np.int64}


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to collect; the seed key alone determines its content."""

    split: int
    index: int


def check_dataset_name(dataset_name: str) -> None:
    if dataset_name not in SUPPORTED_DATASETS:
        raise DataConfigError(
            f"dataset {dataset_name!r} cannot be generated; supported play datasets: {', '.join(SUPPORTED_DATASETS)}"
        )


class EpisodeCollector:
    """Owns one environment and its oracles; collects whole episodes exactly as OGBench's play script does."""

    def __init__(self, dataset_name: str, seed: int, max_episode_steps: int) -> None:
        import gymnasium
        import ogbench.manipspace  # noqa: F401  (registers the manipspace environments)
        from ogbench.manipspace.oracles.plan.button_plan import ButtonPlanOracle
        from ogbench.manipspace.oracles.plan.cube_plan import CubePlanOracle
        from ogbench.manipspace.oracles.plan.drawer_plan import DrawerPlanOracle
        from ogbench.manipspace.oracles.plan.window_plan import WindowPlanOracle

        check_dataset_name(dataset_name)
        env_name = dataset_env_name(dataset_name)  # cube-single-play-v0 -> its gymnasium id cube-single-v0
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
        return {k: np.asarray(v, dtype=SAVED_DTYPES.get(k, np.float32)) for k, v in data.items()}

    def collect(self, spec: EpisodeSpec) -> dict[str, np.ndarray]:
        """Roll out one episode, retrying with a fresh seed when the Scene health check rejects it."""
        for attempt in count():
            # One 32-bit seed for the env's RNG and numpy's global one (which the OGBench oracles draw from).
            seq = np.random.SeedSequence(entropy=self._seed, spawn_key=(spec.split, spec.index, attempt))
            episode = self._rollout(int(seq.generate_state(1, dtype=np.uint32)[0]))
            if self._is_healthy(episode["qpos"]):
                return episode


def quiet_sim_warnings() -> None:
    """Silence simulator set-up noise (no GLFW display, Box float32 casts): it says nothing about the data."""
    warnings.filterwarnings("ignore", message=".*DISPLAY.*")
    warnings.filterwarnings("ignore", message=".*precision lowered.*")


# Episodes queued per worker: keeps workers busy while the parent saves a file, without unbounded buffering.
EPISODES_IN_FLIGHT_PER_WORKER = 4

# Worker-process state: each spawned worker builds one collector in its initializer and reuses it.
_WORKER_COLLECTOR: EpisodeCollector | None = None


def _worker_init(dataset_name: str, seed: int, max_episode_steps: int) -> None:
    global _WORKER_COLLECTOR
    quiet_sim_warnings()
    _WORKER_COLLECTOR = EpisodeCollector(dataset_name, seed, max_episode_steps)


def _worker_collect(spec: EpisodeSpec) -> dict[str, np.ndarray]:
    assert _WORKER_COLLECTOR is not None, "worker initializer did not run"
    return _WORKER_COLLECTOR.collect(spec)


def collect_in_process(
    dataset_name: str, seed: int, max_episode_steps: int, specs: Iterable[EpisodeSpec]
) -> Generator[dict[str, np.ndarray], None, None]:
    """Single-worker path: no subprocess, but the caller's global numpy RNG state is restored afterwards."""
    saved_state = np.random.get_state()
    try:
        with warnings.catch_warnings():
            quiet_sim_warnings()
            collector = EpisodeCollector(dataset_name, seed, max_episode_steps)
        for spec in specs:
            yield collector.collect(spec)
    finally:
        np.random.set_state(saved_state)


def collect_in_pool(
    dataset_name: str, seed: int, max_episode_steps: int, specs: Iterable[EpisodeSpec], workers: int
) -> Generator[dict[str, np.ndarray], None, None]:
    """Episodes in order from spawned workers, a bounded number in flight. ``ProcessPoolExecutor``: a worker that
    dies raises ``BrokenProcessPool`` rather than respawning forever; 'spawn': MuJoCo/GL state must not be forked
    (so scripts calling this need the ``if __name__ == "__main__":`` guard)."""
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
