"""Vectorised, chunked rollouts of a policy for one or many replicas: which episode runs where, with which seed.

Replica ``r``'s episode ``k`` is always reset with seed ``seeds[r] + k`` (whichever env runs it), and with
``episode_info`` the policy learns each row's (replica, episode, chunk index) to seed its noise, so results depend
neither on ``num_envs``, the other replicas nor the DDP sharding (rank ``r`` of ``W`` runs the combined episodes
``replica * num_episodes + k`` equal to ``r`` mod ``W``; :func:`rql_lightning.evaluator.gather` joins them).
Each replica steps its own ``num_envs`` envs of one vector env in lock-step, one policy call per round; a chunk's
first ``chunk_size`` actions (clipped to ``[-1, 1]``) run open loop in the worker. Autoreset is off: each finished
env is reset explicitly with its next episode's seed, so exactly ``num_episodes`` are counted; idle envs step zeros.
``video_episodes`` extra episodes per replica (ids ``num_episodes..``) are rendered but never counted.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

from rql_lightning.envs.make import make_eval_env, resolve_env_id
from rql_lightning.envs.wrappers import ChunkStepWrapper

__all__ = ["EvalEnvs", "EvalResult", "Policy", "evaluate_policy"]

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
    frames: list[np.ndarray] = field(default_factory=list)  # (T', H, W, 3) uint8 per recorded counted episode
    wall_time_s: float = 0.0
    episode_ids: np.ndarray | None = None  # (E,) int64, each episode's seed offset; None means arange(E)
    videos: list[np.ndarray] = field(default_factory=list)  # the extra video episodes (in no statistic)

    def __post_init__(self) -> None:
        if self.episode_ids is None:
            self.episode_ids = np.arange(self.num_episodes, dtype=np.int64)

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.episode_lengths)) if self.num_episodes else float("nan")

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


def _chunk_env(env_name: str, kwargs: dict[str, Any], chunk_size: int, frame_skip: int) -> gymnasium.Env:
    """A vector-env worker's env (picklable through ``functools.partial``): whole chunks per step."""
    env = make_eval_env(env_name, **kwargs)
    env.info_keys = ("success",)
    env.frame_skip = max(1, int(frame_skip))
    return ChunkStepWrapper(env, chunk_size)


class EvalEnvs:
    """One vector env kept alive between evaluations (workers cost ~1 s each), rebuilt when what it was built for
    changes and dropped after a failed rollout. Reuse changes no result: every episode is reset with its own seed.

    One env is a ``SyncVectorEnv``, more an ``AsyncVectorEnv`` (``context``: the start method). ``builds`` counts
    builds; ``recording``: some env may still record frames from the last rollout.
    """

    def __init__(self, context: str | None = None):
        self.context = context
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
        factories = [functools.partial(_chunk_env, n, dict(env_kwargs), chunk_size, frame_skip) for n in env_names]
        mode = gymnasium.vector.AutoresetMode.DISABLED
        if len(factories) == 1:
            envs = gymnasium.vector.SyncVectorEnv(factories, autoreset_mode=mode)
        else:
            envs = gymnasium.vector.AsyncVectorEnv(factories, autoreset_mode=mode, context=self.context)
        self._envs, self._spec, self.recording = envs, spec, False
        self.builds += 1
        return envs

    def close(self) -> None:
        envs, self._envs, self._spec = self._envs, None, None
        if envs is not None:
            envs.close()

    def discard(self) -> None:
        """Forget the vector env after a failed rollout (a worker may be left mid-step), closing what still closes."""
        with contextlib.suppress(Exception):
            self.close()  # forgets the env before closing it

    def __enter__(self) -> EvalEnvs:
        return self

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


def evaluate_policy(
    policy: Policy,
    env_names: Sequence[str],
    num_episodes: int,
    num_envs: int,
    seeds: Sequence[int],
    chunk_size: int,
    render_episodes: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    context: str | None = None,
    *,
    rank: int = 0,
    world_size: int = 1,
    video_episodes: int = 0,
    frame_skip: int = 1,
    episode_info: bool = False,
    envs: EvalEnvs | None = None,
) -> list[EvalResult]:
    """Roll out ``policy`` for ``num_episodes`` episodes of each replica (``env_names[r]``, ``seeds[r]``) on
    ``num_envs`` envs per replica; one result per replica, of this ``rank``'s share only.

    ``render_episodes``: frames of each replica's first ones; ``frame_skip``: record every n-th step.
    ``episode_info``: call ``policy(obs, replicas, episode_ids, chunk_indices)``. ``envs``: a holder that keeps
    the vector env alive for the next call (closed by its owner); None builds one for this call only.
    """
    for name, value in (("num_episodes", num_episodes), ("num_envs", num_envs), ("chunk_size", chunk_size)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need 0 <= rank < world_size, got rank={rank} world_size={world_size}")
    if video_episodes < 0 or frame_skip < 1:
        raise ValueError(f"need video_episodes >= 0 and frame_skip >= 1, got {video_episodes}, {frame_skip}")
    if not env_names or len(env_names) != len(seeds):
        raise ValueError(f"need one env name per seed, got {len(env_names)} names and {len(seeds)} seeds")
    for name in set(env_names):
        resolve_env_id(name)  # fail fast, in this process, on a bad name
    start = time.perf_counter()
    n = num_episodes
    counted = np.arange(rank, len(seeds) * n, world_size, dtype=np.int64)
    # Jobs (replica, episode id, counted, recorded), replica by replica, each replica's video episodes first so
    # their slow rendering overlaps with the counted episodes instead of trailing them.
    jobs = []
    for r in range(len(seeds)):
        jobs += [(r, n + v, 0, 1) for v in range(video_episodes)]
        jobs += [(r, int(k), 1, int(j < render_episodes)) for j, k in enumerate(counted[counted // n == r] % n)]
    table = np.array(jobs, dtype=np.int64).reshape(-1, 4)
    holder = envs if envs is not None else EvalEnvs(context)
    try:
        successes, returns, lengths, frames = _rollout(
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
        mine, videos = (np.flatnonzero((table[:, 0] == r) & (table[:, 2] == c)) for c in (1, 0))
        results.append(
            EvalResult.from_episodes(
                table[mine, 1],
                successes[mine],
                returns[mine],
                lengths[mine],
                frames=[frames[j] for j in mine if j in frames],
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Run ``jobs`` (rows: replica, episode id, counted, recorded), each replica's in order on its own envs of
    one vector env; per-job outcome arrays."""
    num_jobs = len(jobs)
    successes = np.zeros(num_jobs, dtype=bool)
    returns = np.zeros(num_jobs, dtype=np.float64)
    lengths = np.zeros(num_jobs, dtype=np.int64)
    frames: dict[int, np.ndarray] = {}
    if num_jobs == 0:
        return successes, returns, lengths, frames
    replica, ids, recorded = jobs[:, 0], jobs[:, 1], jobs[:, 3].astype(bool)
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
    ep_return = np.zeros(n, dtype=np.float64)
    ep_length = np.zeros(n, dtype=np.int64)
    done_count = 0
    while done_count < num_jobs:
        # Every running env takes a new chunk each round (envs step whole chunks); idle envs step zeros.
        active = job >= 0
        batch = obs[active]
        if np.issubdtype(batch.dtype, np.floating):
            batch = batch.astype(np.float32, copy=False)
        running = job[active]
        info_args = (replica[running], ids[running], chunk_count[active].copy()) if episode_info else ()
        chunks[active] = _policy_chunks(policy, batch, chunk_size, act_dim, *info_args)
        chunks[~active] = 0.0
        chunk_count[active] += 1
        obs, reward, terminated, truncated, info = envs.step(chunks)
        ep_return += reward
        ep_length += np.asarray(info["steps"], dtype=np.int64)
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
                successes[j] = bool(success[i])
                returns[j] = ep_return[i]
                lengths[j] = ep_length[i]
                done_count += 1
                if taken is not None and taken[i] is not None and recorded[j]:
                    frames[j] = taken[i]
            job[i] = next_job(i)
        if done_count >= num_jobs:
            break
        # Reset every finished env: with its next episode's seed, or (idle envs) with a seed outside the
        # evaluation range so the vector env can keep stepping it.
        seeds_now = [int(job_seeds[j]) if j >= 0 else idle_seed + i for i, j in enumerate(job)]
        if any_recorded:
            envs.set_attr("record", [bool(j >= 0 and recorded[j]) for j in job])
        reset_obs, _ = envs.reset(seed=seeds_now, options={"reset_mask": finished.copy()})
        obs = np.where(finished.reshape((n,) + (1,) * (obs.ndim - 1)), reset_obs, obs)
        chunk_count[finished] = 0
        ep_return[finished] = 0.0
        ep_length[finished] = 0
    return successes, returns, lengths, frames
