"""Evaluation envs from a name (what needs gymnasium's registry; the string rules are :mod:`rql_lightning.naming`)
and vectorised, chunked rollouts of a policy for one or many replicas: which episode runs where, with which seed.
Nothing here knows a LightningModule: a policy is any callable from observations to action chunks.

Replica ``r``'s episode ``k`` is always reset with seed ``seeds[r] + k`` (whichever env runs it), and with
``episode_info`` the policy learns each row's (replica, episode, chunk index) to seed its noise, so results depend
neither on ``num_envs``, the other replicas nor the DDP sharding (rank ``r`` of ``W`` runs the combined episodes
``replica * num_episodes + k`` equal to ``r`` mod ``W``). Each replica steps its own ``num_envs`` envs of one vector
env in lock-step, one policy call per round, a chunk's first ``chunk_size`` actions (clipped to ``[-1, 1]``) open
loop in the worker. Autoreset is off: a finished env is reset with its next episode's seed; idle envs step zeros.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

from rql_lightning.errors import UserError
from rql_lightning.naming import MINARI_PREFIX, is_minari_env_name, parse_singletask

_EXAMPLES = "cube-single-singletask-task1-v0, cube-single-play-singletask-task1-v0, scene-singletask-task2-v0"


class UnknownEnvError(UserError, ValueError):
    """An evaluation env name that is neither an OGBench single-task env nor ``minari:<dataset>``."""


class EvalEnvWrapper(gymnasium.Wrapper):
    """Outermost wrapper of :func:`make_eval_env`: deterministic resets. OGBench's take settling steps with an
    unseedable ``action_space.sample()``, leaving a MuJoCo solver warm start that differs between runs (observations
    then differ at 1e-14); zeroing ``MjData.qacc_warmstart`` after every reset makes rollouts bitwise reproducible.
    """

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        warmstart = getattr(getattr(self.env.unwrapped, "_data", None), "qacc_warmstart", None)
        if warmstart is not None:
            warmstart[:] = 0.0
        return obs, info


def resolve_env_id(env_name: str) -> tuple[str, bool]:
    """``(gymnasium id, is_dataset_name)`` of an OGBench single-task env id or dataset name, or ``minari:<dataset>``
    as is; :class:`UnknownEnvError` (a ``ValueError``) for anything else."""
    if is_minari_env_name(env_name):
        return env_name, False
    import ogbench  # noqa: F401  (importing registers the OGBench environments with gymnasium)

    try:
        task = parse_singletask(env_name)
    except ValueError:
        raise UnknownEnvError(
            f"env_name={env_name!r} is not an OGBench single-task env id or dataset name; use one like {_EXAMPLES}"
        ) from None
    if env_name in gymnasium.registry:
        return env_name, False
    if task.env in gymnasium.registry:
        return task.env, True
    raise UnknownEnvError(
        f"env_name={env_name!r} is not a registered OGBench single-task env or dataset name; use one like {_EXAMPLES}"
    )


def max_episode_steps(env_name: str) -> int | None:
    """Time limit of an evaluation env (from its gymnasium spec; an OGBench env is not built)."""
    env_id, _ = resolve_env_id(env_name)
    if is_minari_env_name(env_id):
        with make_eval_env(env_id) as env:  # a gymnasium.Env closes on exit
            return env.spec.max_episode_steps if env.spec is not None else None
    return gymnasium.spec(env_id).max_episode_steps


def success_timing_of(env_name: str, requested: str | None = None) -> str | None:
    """When ``env_name`` computes success, reward and termination: on the state before the step (``pre``, OGBench
    1.2's single-task envs) or after it (``post``, OGBench 1.1's). ``requested`` (``eval.success_timing``) if set,
    else the installed OGBench's default for this env; None for a Minari env, which has no such switch."""
    env_id, _ = resolve_env_id(env_name)
    if is_minari_env_name(env_id):
        return None
    return requested or gymnasium.spec(env_id).kwargs.get("success_timing", "post")


def make_eval_env(env_name: str, **kwargs: Any) -> gymnasium.Env:
    """One evaluation env (no dataset download) in :class:`EvalEnvWrapper`, of an env id, a dataset name or
    ``minari:<dataset id or folder>`` (Minari's ``eval_env=True``); ``kwargs`` go to the env's constructor
    (``success_timing=None``: the installed OGBench's default; the passive env checker is off by default)."""
    env_id, is_dataset_name = resolve_env_id(env_name)
    if kwargs.get("success_timing", "") is None:
        del kwargs["success_timing"]
    if is_minari_env_name(env_id):
        import minari

        where = env_id[len(MINARI_PREFIX) :]  # a dataset id, or the absolute path of a dataset's folder
        if os.path.isabs(where):
            dataset = minari.MinariDataset(os.path.join(where, "data"))
        else:
            dataset = minari.load_dataset(where)
        return EvalEnvWrapper(dataset.recover_environment(eval_env=True, **kwargs))
    kwargs.setdefault("disable_env_checker", True)
    if is_dataset_name:
        import ogbench

        env = ogbench.make_env_and_datasets(env_name, env_only=True, **kwargs)
    else:
        env = gymnasium.make(env_id, **kwargs)
    return EvalEnvWrapper(env)


Policy = Callable[..., Any]  # (obs) or, with episode_info, (obs, replicas, episode_ids, chunk_indices) -> chunks


@dataclass
class EvalResult:
    """Outcome of an evaluation, per-episode arrays ordered by episode id (rates NaN when it holds no episode)."""

    success_rate: float
    mean_return: float
    num_episodes: int
    episode_successes: np.ndarray  # (E,) bool
    episode_returns: np.ndarray  # (E,) float64
    episode_lengths: np.ndarray  # (E,) int64
    wall_time_s: float = 0.0
    episode_ids: np.ndarray | None = None  # (E,) int64, each episode's seed offset; None means arange(E)
    videos: list[np.ndarray] = field(default_factory=list)  # the extra video episodes (in no statistic)

    def __post_init__(self) -> None:
        if self.episode_ids is None:
            self.episode_ids = np.arange(self.num_episodes, dtype=np.int64)

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.episode_lengths)) if self.num_episodes else float("nan")

    def numbers(self) -> dict[str, float]:
        """The ``eval/*`` numbers by name (as ``eval.json`` holds them)."""
        return {
            "episodes": self.num_episodes,
            "success_rate": self.success_rate,
            "return": self.mean_return,
            "length": self.mean_length,
        }

    def summary(self) -> str:
        return (
            f"success_rate={self.success_rate:.3f} return={self.mean_return:.2f} "
            f"length={self.mean_length:.1f} episodes={self.num_episodes} ({self.wall_time_s:.1f}s)"
        )

    @classmethod
    def from_episodes(cls, episode_ids, successes, returns, lengths, **extra: Any) -> EvalResult:
        """Build a result from per-episode arrays (any order; sorted by episode id here)."""
        order = np.argsort(np.asarray(episode_ids), kind="stable")
        ids = np.asarray(episode_ids, dtype=np.int64)[order]
        succ = np.asarray(successes, dtype=bool)[order]
        ret = np.asarray(returns, dtype=np.float64)[order]
        n = len(ids)
        return cls(
            success_rate=float(succ.mean()) if n else float("nan"),
            mean_return=float(ret.mean()) if n else float("nan"),
            num_episodes=n,
            episode_successes=succ,
            episode_returns=ret,
            episode_lengths=np.asarray(lengths, dtype=np.int64)[order],
            episode_ids=ids,
            **extra,
        )


class ChunkStepWrapper(gymnasium.Wrapper):
    """A worker's env (picklable through ``functools.partial``), evaluation's and the online phase's: a whole chunk
    ``(h, act_dim)`` per ``step``, open loop in the worker (one round trip per chunk), stopping at the episode's end;
    :attr:`rows` holds the steps taken. Infos keep ``success`` (batching OGBench's ~20 arrays costs as much as the step)
    and the episode's ``return`` and ``length`` so far. ``record`` (``VectorEnv.set_attr``) stores a frame after the
    reset, every ``frame_skip``-th step and the last, for :meth:`take_frames`; rendering needs a GL backend chosen
    before MuJoCo is imported (headless: ``MUJOCO_GL=egl`` or ``osmesa``), else a warning and no frames."""

    def __init__(self, env_name: str, kwargs: dict[str, Any], chunk_size: int = 1, frame_skip: int = 1):
        env = make_eval_env(env_name, **kwargs)
        super().__init__(env)
        self.settings = _settings(env_name, kwargs, chunk_size, frame_skip)  # what :func:`take_env` matches
        self.record, self.frame_skip, self._render_failed, self.rendered = False, max(1, int(frame_skip)), False, False
        self._t, self._frames, self.rows, self.episode_return = 0, [], [], 0.0
        self.action_space = gymnasium.vector.utils.batch_space(env.action_space, chunk_size)  # (h, act_dim)

    def _capture(self) -> None:
        if not self.record or self._render_failed:
            return
        self.rendered = True
        try:
            frame = self.env.unwrapped.render()
        except Exception as err:  # noqa: BLE001  (no GL backend, etc.; rendering is optional)
            self._render_failed = True
            self._frames = []
            warnings.warn(
                f"Rendering disabled: {type(err).__name__}: {err} (headless: set MUJOCO_GL=egl or osmesa)",
                RuntimeWarning,
                stacklevel=2,
            )
            return
        self._frames.append(np.asarray(frame, dtype=np.uint8).copy())

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.observation, info = self.env.reset(seed=seed, options=options)
        self._frames, self._t, self.episode_return = [], 0, 0.0
        self._capture()
        return self.observation, {k: info[k] for k in ("success",) if k in info}

    def step(self, chunk):
        self.rows = []
        for action in chunk:
            obs, reward, terminated, truncated, info = self.env.step(action)
            self._t += 1
            if self._t % self.frame_skip == 0 or terminated or truncated:
                self._capture()
            success = float(info.get("success", 0.0))
            self.rows.append((self.observation, action, float(reward), bool(terminated), bool(truncated), success))
            self.observation = obs
            if terminated or truncated:
                break
        total = sum(row[2] for row in self.rows)
        self.episode_return += total
        info = {**{k: info[k] for k in ("success",) if k in info}, "return": self.episode_return, "length": self._t}
        return obs, total, terminated, truncated, info

    def take_frames(self) -> np.ndarray | None:
        frames, self._frames = self._frames, []
        return np.stack(frames) if frames else None

    def run_chunk(self, actions: np.ndarray, reset_seed: int) -> dict[str, np.ndarray]:
        """The online phase's chunk: one row per step taken (``n <= h``) and ``next_observation``, the state to act in
        next (the reset's, seeded ``reset_seed``, after an episode's end)."""
        *_, terminated, truncated, _ = self.step(actions)
        if terminated or truncated:
            self.reset(seed=int(reset_seed))
        columns = ("observations", "actions", "rewards", "terminated", "truncated", "success")
        steps = {name: np.asarray(column) for name, column in zip(columns, zip(*self.rows, strict=True), strict=True)}
        return {**steps, "next_observation": np.asarray(self.observation)}


def _settings(env_name: str, kwargs: dict[str, Any], chunk_size: int, frame_skip: int) -> tuple:
    """What makes two :class:`ChunkStepWrapper` the same env (``success_timing=None`` is the env's own timing)."""
    if "success_timing" in kwargs:
        kwargs = {**kwargs, "success_timing": success_timing_of(env_name, kwargs["success_timing"])}
    return env_name, sorted(kwargs.items()), int(chunk_size), max(1, int(frame_skip))


# Envs built in this process and handed back by their holder, newest first, for the next that asks for the same (a
# sweep's next job, rql-eval after training, the forks of a vector env): an OGBench env costs ~1 s to build and holds
# ~200 MB. Reuse changes no result (every episode is reset with its own seed); one that rendered is closed instead
# (a GL context is no fork's).
_SPARES: list[ChunkStepWrapper] = []
SPARES_KEPT = 2


def take_env(env_name: str, kwargs: dict[str, Any], chunk_size: int = 1, frame_skip: int = 1) -> ChunkStepWrapper:
    """A spare :class:`ChunkStepWrapper` of these settings, now the caller's, else a new one; :func:`give_back` it."""
    wanted = _settings(env_name, kwargs, chunk_size, frame_skip)
    spare = next((i for i, env in enumerate(_SPARES) if env.settings == wanted), None)
    return ChunkStepWrapper(env_name, dict(kwargs), chunk_size, frame_skip) if spare is None else _SPARES.pop(spare)


def give_back(env: ChunkStepWrapper) -> None:
    """Keep ``env`` for the next :func:`take_env` (closing the oldest spare past :data:`SPARES_KEPT`)."""
    if env.rendered:
        env.close()
        return
    env.record = False
    _SPARES.insert(0, env)
    while len(_SPARES) > SPARES_KEPT:
        _SPARES.pop().close()


def worker_envs(
    env_names: Sequence[str], env_kwargs: dict[str, Any], chunk_size: int = 1, frame_skip: int = 1
) -> gymnasium.vector.AsyncVectorEnv:
    """A :class:`ChunkStepWrapper` per name, each in its own worker process. Where processes fork, each distinct env
    is taken here (:func:`take_env`: an OGBench env parses and compiles its MJCF model twice, ~1 s) and every worker
    runs its forked copy; gymnasium reads the spaces from that same env instead of building one more. Elsewhere (no
    fork: macOS, Windows) each worker builds its own."""
    build = functools.partial(ChunkStepWrapper, kwargs=dict(env_kwargs), chunk_size=chunk_size, frame_skip=frame_skip)
    disabled = gymnasium.vector.AutoresetMode.DISABLED
    if "fork" not in multiprocessing.get_all_start_methods():
        factories = [functools.partial(build, n) for n in env_names]
        return gymnasium.vector.AsyncVectorEnv(factories, autoreset_mode=disabled)
    built = {n: take_env(n, env_kwargs, chunk_size, frame_skip) for n in dict.fromkeys(env_names)}
    for env in built.values():
        env.observation_space  # noqa: B018  (an OGBench env builds its model on first use: before the fork)
    factories = [functools.partial(built.__getitem__, n) for n in env_names]
    envs = gymnasium.vector.AsyncVectorEnv(factories, context="fork", autoreset_mode=disabled)
    for env in built.values():
        give_back(env)  # the workers run their copies
    return envs


class EvalEnvs(contextlib.AbstractContextManager):
    """One vector env kept alive between evaluations, set up again when what it was set up for changes and dropped
    after a failed rollout; a one-env one's env is given back (:func:`give_back`) when it closes. ``builds`` counts the
    vector envs this holder set up; ``recording``: some env may still record frames from the last rollout.
    """

    def __init__(self):
        self.builds = 0
        self.recording = False
        self._envs: gymnasium.vector.VectorEnv | None = None
        self._spec: tuple | None = None

    @property
    def alive(self) -> bool:
        return self._envs is not None

    def get(self, env_names: Sequence[str], chunk_size: int, env_kwargs: dict[str, Any], frame_skip: int):
        """One env per name (sharing spaces): the current vector env if built for the same, else a new one."""
        spec = (tuple(env_names), int(chunk_size), dict(env_kwargs), int(frame_skip))
        if self._envs is not None and spec == self._spec:
            return self._envs
        self.close()
        if len(env_names) == 1:
            env = take_env(env_names[0], env_kwargs, chunk_size, frame_skip)
            envs = gymnasium.vector.SyncVectorEnv([lambda: env], autoreset_mode=gymnasium.vector.AutoresetMode.DISABLED)
        else:
            envs = worker_envs(env_names, env_kwargs, chunk_size, frame_skip)
        self._envs, self._spec, self.recording = envs, spec, False
        self.builds += 1
        return envs

    def close(self, keep: bool = True) -> None:
        """Close the vector env; with ``keep``, a one-env one's env goes to the next holder instead."""
        envs, self._envs, self._spec = self._envs, None, None
        if keep and isinstance(envs, gymnasium.vector.SyncVectorEnv):
            give_back(envs.envs[0])
            envs.closed = True  # gymnasium's flag: closing the vector env would close the env it gave back
        elif envs is not None:
            envs.close()

    def discard(self) -> None:
        """Forget the vector env after a failed rollout (a worker may be left mid-step), closing what still closes."""
        with contextlib.suppress(Exception):
            self.close(keep=False)  # forgets the env before closing it

    def __exit__(self, *exc: object) -> None:
        self.close()


def _policy_chunks(policy: Policy, obs: np.ndarray, chunk_size: int, act_dim: int, *info: np.ndarray) -> np.ndarray:
    out = policy(obs, *info)
    out = np.asarray(out.detach().cpu().numpy() if hasattr(out, "detach") else out)  # a torch tensor too
    n = obs.shape[0]
    if out.ndim == 2 and chunk_size == 1:
        out = out[:, None, :]
    if out.ndim != 3 or out.shape[0] != n or out.shape[2] != act_dim or out.shape[1] < chunk_size:
        raise ValueError(
            f"policy returned shape {tuple(out.shape)} for {n} observations; expected ({n}, H, {act_dim}) "
            f"with H >= chunk_size={chunk_size}"
        )
    out = out[:, :chunk_size].astype(np.float32, copy=False)
    if not np.all(np.isfinite(out)):
        raise ValueError("policy returned non-finite actions")
    return np.clip(out, -1.0, 1.0)


def check_rollout_counts(
    num_episodes: int, num_envs: int, video_episodes: int = 0, frame_skip: int = 1, chunk_size: int = 1
) -> None:
    """The counts a rollout needs, for :func:`evaluate_policy` and for the :class:`~rql_lightning.evaluator.Evaluator`
    built hours before its first rollout."""
    for name, value in (("num_episodes", num_episodes), ("num_envs", num_envs), ("chunk_size", chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if video_episodes < 0 or frame_skip < 1:
        raise ValueError(f"need video_episodes >= 0 and frame_skip >= 1, got {video_episodes}, {frame_skip}")


def evaluate_policy(
    policy: Policy,
    env_names: Sequence[str],
    num_episodes: int,
    num_envs: int,
    seeds: Sequence[int],
    chunk_size: int,
    env_kwargs: dict[str, Any] | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
    video_episodes: int = 0,
    frame_skip: int = 1,
    episode_info: bool = False,
    envs: EvalEnvs | None = None,
) -> list[EvalResult]:
    """Roll out ``policy`` for ``num_episodes`` episodes of each replica (``env_names[r]``, ``seeds[r]``) on
    ``num_envs`` envs per replica; one result per replica, of this ``rank``'s share only. ``video_episodes`` extra
    ones (ids ``num_episodes..``), rendered, never counted; ``frame_skip``: record every n-th step; ``episode_info``:
    call ``policy(obs, replicas, episode_ids, chunk_indices)``; ``envs``: a holder that keeps the vector env alive
    (closed by its owner), None: this call's.
    """
    check_rollout_counts(num_episodes, num_envs, video_episodes, frame_skip, chunk_size)
    if not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
    if not env_names or len(env_names) != len(seeds):
        raise ValueError(f"need one env name per seed, got {len(env_names)} names and {len(seeds)} seeds")
    for name in set(env_names):
        resolve_env_id(name)  # fail fast, in this process, on a bad name
    start = time.perf_counter()
    n = num_episodes
    counted = np.arange(rank, len(seeds) * n, world_size, dtype=np.int64)
    # Jobs (replica, episode id, recorded), replica by replica, each replica's video episodes first so their slow
    # rendering overlaps with the counted episodes instead of trailing them.
    jobs = []
    for r in range(len(seeds)):
        jobs += [(r, n + v, 1) for v in range(video_episodes)]
        jobs += [(r, int(k), 0) for k in counted[counted // n == r] % n]
    table = np.array(jobs, dtype=np.int64).reshape(-1, 3)
    holder = envs if envs is not None else EvalEnvs()
    try:
        outcomes, frames = _rollout(
            policy, holder, env_names, seeds, table, num_envs, chunk_size, env_kwargs, frame_skip, episode_info
        )
    except BaseException:
        holder.discard()  # a worker may be left mid-step: never reuse it
        raise
    if envs is None:
        holder.close()
    wall = time.perf_counter() - start
    results = []
    for r in range(len(seeds)):
        mine, videos = (np.flatnonzero((table[:, 0] == r) & (table[:, 2] == c)) for c in (0, 1))
        results.append(
            EvalResult.from_episodes(
                table[mine, 1],
                *outcomes[mine].T,  # successes, returns, lengths
                videos=[frames[j] for j in videos if j in frames],
                wall_time_s=wall,
            )
        )
    return results


def _rollout(
    policy: Policy,
    holder: EvalEnvs,
    env_names: Sequence[str],
    seeds: Sequence[int],
    jobs: np.ndarray,
    num_envs: int,
    chunk_size: int,
    env_kwargs: dict[str, Any] | None,
    frame_skip: int,
    episode_info: bool,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Run ``jobs`` (rows: replica, episode id, recorded), each replica's in order on its own envs of
    one vector env; per-job (success, return, length) rows (float64 holds each exactly) and frames."""
    num_jobs = len(jobs)
    outcomes = np.zeros((num_jobs, 3))
    frames: dict[int, np.ndarray] = {}
    if num_jobs == 0:
        return outcomes, frames
    replica, ids, recorded = jobs[:, 0], jobs[:, 1], jobs[:, 2].astype(bool)
    any_recorded = bool(recorded.any())
    queues = [np.flatnonzero(replica == r).tolist() for r in range(len(seeds))]  # each replica's jobs, in order
    owner = np.repeat(np.arange(len(seeds)), [min(num_envs, len(q)) for q in queues])  # replica of each env
    n = len(owner)
    envs = holder.get([env_names[r] for r in owner], chunk_size, dict(env_kwargs or {}), frame_skip)
    job_seeds = np.asarray(seeds, dtype=np.int64)[replica] + ids
    # Seeds for idle envs (no job left): above every episode seed used here.
    idle_seed = int(job_seeds.max()) + 1

    def next_job(env: int) -> int:  # the next job of the env's replica, -1 when it has none left
        queue = queues[owner[env]]
        return queue.pop(0) if queue else -1

    act_dim = int(envs.single_action_space.shape[-1])
    job = np.array([next_job(i) for i in range(n)], dtype=np.int64)  # job run by each env, -1 when idle
    if any_recorded or holder.recording:
        envs.set_attr("record", [bool(recorded[j]) for j in job])
        holder.recording = any_recorded
    obs, _ = envs.reset(seed=[int(job_seeds[j]) for j in job])
    chunks = np.zeros((n, chunk_size, act_dim), dtype=np.float32)
    chunk_count = np.zeros(n, dtype=np.int64)  # chunks taken in the current episode
    done_count = 0
    while done_count < num_jobs:
        active = job >= 0
        batch = obs[active]
        if np.issubdtype(batch.dtype, np.floating):
            batch = batch.astype(np.float32, copy=False)
        running = job[active]
        info_args = (replica[running], ids[running], chunk_count[active].copy()) if episode_info else ()
        chunks[active] = _policy_chunks(policy, batch, chunk_size, act_dim, *info_args)
        chunks[~active] = 0.0
        chunk_count[active] += 1
        obs, _, terminated, truncated, info = envs.step(chunks)
        finished = terminated | truncated
        if not finished.any():
            continue
        success = np.asarray(info.get("success", np.zeros(n, dtype=bool)), dtype=bool)
        taken = None
        if any_recorded and np.any(finished & active & recorded[np.maximum(job, 0)]):
            taken = envs.call("take_frames")
        for i in np.flatnonzero(finished):
            j = int(job[i])
            if j >= 0:
                outcomes[j] = success[i], info["return"][i], info["length"][i]
                done_count += 1
                if taken is not None and taken[i] is not None and recorded[j]:
                    frames[j] = taken[i]
            job[i] = next_job(i)
        if done_count >= num_jobs:
            break
        seeds_now = [int(job_seeds[j]) if j >= 0 else idle_seed + i for i, j in enumerate(job)]
        if any_recorded:
            envs.set_attr("record", [bool(j >= 0 and recorded[j]) for j in job])
        reset_obs, _ = envs.reset(seed=seeds_now, options={"reset_mask": finished.copy()})
        obs = np.where(finished.reshape((n,) + (1,) * (obs.ndim - 1)), reset_obs, obs)
        chunk_count[finished] = 0
    return outcomes, frames
