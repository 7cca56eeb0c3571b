"""Vectorised, chunked rollouts of a policy for one or many replicas: which episode runs where, with which seed,
counted how.

Replicas and seeding
    ``env_names[r]`` and ``seeds[r]`` describe replica ``r`` (a run: one env, one seed).  Its episode ``k``
    (``0 <= k < num_episodes``) is always reset with seed ``seeds[r] + k``, whichever worker runs it, so
    per-episode results do not depend on ``num_envs`` or on the other replicas for a deterministic policy.
    Every replica owns ``num_envs`` envs of one vector env and runs its own episodes on them in its own order,
    as its run alone would; all envs step in lock-step, so one policy call per round serves every replica
    (their envs must share observation and action spaces, as the tasks of one dataset do).

Sharding (DDP)
    With ``world_size = W`` and ``rank = r``, only the combined episodes ``i = replica * num_episodes + k`` with
    ``i % W == r`` are run (seeds unchanged), balanced over all replicas, so the union over ranks is exactly
    the single-process evaluation; each result then holds that rank's episodes (``EvalResult.episode_ids``).
    Gathering the ranks' results is the caller's job (:func:`rql_lightning.evaluator.gather`).

Action chunks
    ``policy(obs)`` maps observations ``(N, *obs_shape)`` to chunks ``(N, H, act_dim)`` with
    ``H >= chunk_size``; the first ``chunk_size`` actions are executed open loop (inside the env worker, see
    :class:`~rql_lightning.envs.wrappers.ChunkStepWrapper`) before the policy is asked again for that
    environment.  Envs advance one chunk per round, so each call batches all running environments (an episode
    ending mid-chunk stops there and the env starts its next episode in the next round).  Actions are clipped
    to ``[-1, 1]``.  Floating-point observations are passed as ``float32``.  With ``episode_info=True`` the
    policy is called as ``policy(obs, replicas, episode_ids, chunk_indices)``: each row's replica (rows grouped
    by replica, in order), episode and how many chunks that episode has already taken, so a stochastic policy
    can draw its noise from a stream per (replica, episode, chunk) and give results that depend neither on
    ``num_envs`` nor on the sharding.

Episode accounting
    The vector env runs with ``AutoresetMode.DISABLED``; finished environments are reset explicitly with the
    next episode's seed, so each episode is counted exactly once and exactly ``num_episodes`` are run.  An
    environment with no episodes left keeps stepping with zero actions (the vector API steps all
    environments together) and its output is ignored.  Success is ``info["success"]`` at an episode's last
    step; the return is the sum of its rewards (summed per chunk in the worker, then over chunks: identical
    to a per-step sum for OGBench's integer rewards).

Rendering
    ``render_episodes=R`` records frames (see :mod:`rql_lightning.envs.wrappers`) of each replica's first ``R``
    counted episodes on this rank into ``EvalResult.frames``; ``video_episodes=V`` runs ``V`` *extra* episodes
    per replica (ids ``num_episodes .. num_episodes + V - 1``, seeded like the others), records them into
    ``EvalResult.videos`` and leaves them out of every statistic (the reference implementation's
    ``num_video_episodes``).  Rendering is slow: keep ``R``/``V`` small and ``frame_skip`` > 1.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rql_lightning.envs.make import resolve_env_id
from rql_lightning.envs.result import EvalResult
from rql_lightning.envs.vector import EvalEnvs

__all__ = ["Policy", "evaluate_policy"]

Policy = Callable[..., Any]  # (obs) or, with episode_info, (obs, replicas, episode_ids, chunk_indices) -> chunks


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _policy_chunks(policy: Policy, obs: np.ndarray, chunk_size: int, act_dim: int, *info: np.ndarray) -> np.ndarray:
    out = _to_numpy(policy(obs, *info))
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
    ``num_envs`` parallel envs per replica (see module docstring); one result per replica.

    One env in all runs in-process; more use one subprocess per env (``context``: multiprocessing start
    method, platform default if None).  At most one env per episode is created.  ``env_kwargs`` are passed to
    :func:`~rql_lightning.envs.make.make_eval_env`.  ``rank``/``world_size``: run only this rank's share.
    ``render_episodes``: record the first ones of each replica's share; ``video_episodes``: extra recorded
    episodes outside the statistics; ``frame_skip``: record every n-th step.  ``episode_info``: call
    ``policy(obs, replicas, episode_ids, chunk_indices)``.  ``envs``: a holder that keeps the vector env alive
    for the next call (closed by its owner); None builds one for this call only.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
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
