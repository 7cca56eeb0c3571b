"""OGBench single-task environments and vectorised, chunked policy rollouts for evaluation.

Two entry points:

* :func:`make_eval_env` builds one OGBench single-task environment from an environment id
  (``cube-single-singletask-task1-v0``) or a dataset name (``cube-single-play-singletask-task1-v0``).
* :func:`evaluate_policy` runs ``num_episodes`` episodes of an action-chunking policy over ``num_envs``
  parallel copies of the environment and returns an :class:`EvalResult`; ``rank``/``world_size`` run one
  rank's share of them (for DDP), ``video_episodes`` adds rendered episodes outside the statistics.

Seeding
    Episode ``k`` (``0 <= k < num_episodes``) is always reset with seed ``seed + k``, whichever worker
    runs it, so per-episode results do not depend on ``num_envs`` for a deterministic policy.  Results are
    ordered by episode index.

    OGBench's manipulation envs take two "settling" steps with ``action_space.sample()`` inside ``reset``;
    that action space is built fresh on every access and cannot be seeded, so the MuJoCo solver warm-start
    left behind differs between runs (observations then differ at the 1e-14 level).  The wrapper returned
    by :func:`make_eval_env` zeroes ``MjData.qacc_warmstart`` after every reset, which makes rollouts
    bitwise reproducible.  The warm start only seeds the constraint solver's iterations, so the dynamics
    are unchanged beyond solver tolerance.

Sharding (DDP)
    With ``world_size = W`` and ``rank = r``, only the episodes ``k`` with ``k % W == r`` are run (seeds
    unchanged), so the union over ranks is exactly the single-process evaluation; the result then holds that
    rank's episodes (``EvalResult.episode_ids``).  Gathering the ranks' results is the caller's job (the
    :class:`~rql_lightning.callbacks.evaluation.EvaluationCallback` does it with torchmetrics).

Action chunks
    ``policy(obs)`` maps observations ``(N, *obs_shape)`` to chunks ``(N, H, act_dim)`` with
    ``H >= chunk_size``; the first ``chunk_size`` actions are executed open loop (inside the env worker, see
    :class:`ChunkStepWrapper`) before the policy is asked again for that environment.  Envs advance one chunk
    per round, so each call batches all running environments (an episode ending mid-chunk stops there and
    the env starts its next episode in the next round).  Actions are clipped to ``[-1, 1]``.
    Floating-point observations are passed as ``float32``.  With ``episode_info=True`` the
    policy is called as ``policy(obs, episode_ids, chunk_indices)``: the global episode index of each row and
    how many chunks that episode has already taken, so a stochastic policy can draw its noise from a stream
    per (episode, chunk) and give results that depend neither on ``num_envs`` nor on the sharding.

Episode accounting
    The vector env runs with ``AutoresetMode.DISABLED``; finished environments are reset explicitly with the
    next episode's seed, so each episode is counted exactly once and exactly ``num_episodes`` are run.  An
    environment with no episodes left keeps stepping with zero actions (the vector API steps all
    environments together) and its output is ignored.  Success is ``info["success"]`` at an episode's last
    step; the return is the sum of its rewards (summed per chunk in the worker, then over chunks: identical
    to a per-step sum for OGBench's integer rewards).

Rendering
    ``render_episodes=R`` records RGB frames of the first ``R`` counted episodes of this rank into
    ``EvalResult.frames``; ``video_episodes=V`` runs ``V`` *extra* episodes (ids ``num_episodes ..
    num_episodes + V - 1``, seeded ``seed + id`` like the others), records them into ``EvalResult.videos``
    and leaves them out of every statistic (the reference implementation's ``num_video_episodes``).  Frames
    come from ``env.unwrapped.render()`` (the ``front`` camera, ``width``/``height`` env kwargs, 200x200 by
    default): one after the reset, then one after every ``frame_skip``-th step and after the last step
    (``T + 1`` frames for a ``T``-step episode with ``frame_skip=1``).  Software rendering (EGL or OSMesa on
    llvmpipe) takes 0.1-0.2 s a frame, so keep ``R``/``V`` small and ``frame_skip`` > 1.  MuJoCo offscreen
    rendering needs a GL backend chosen *before* MuJoCo is imported: on a headless machine launch with
    ``MUJOCO_GL=egl`` (or ``osmesa``, Debian package ``libosmesa6``).  If rendering fails, a warning is
    issued and the frames stay empty; evaluation itself is unaffected.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

__all__ = [
    "ChunkStepWrapper",
    "EvalResult",
    "EvalEnvWrapper",
    "evaluate_policy",
    "make_eval_env",
    "max_episode_steps",
    "resolve_env_id",
]

_EXAMPLES = "cube-single-singletask-task1-v0, cube-single-play-singletask-task1-v0, scene-singletask-task2-v0"

Policy = Callable[..., Any]  # (obs) or, with episode_info, (obs, episode_ids, chunk_indices) -> chunks


def _ogbench_registry() -> dict[str, Any]:
    import ogbench  # noqa: F401  (importing registers the OGBench environments with gymnasium)

    return gymnasium.registry


MINARI_PREFIX = "minari:"  # "minari:<dataset id>": the env that Minari recovers for that dataset


def resolve_env_id(env_name: str) -> tuple[str, bool]:
    """Map an OGBench single-task env id or dataset name to its gymnasium id.

    Returns ``(env_id, is_dataset_name)``.  ``minari:<dataset id>`` names the evaluation env of a local
    Minari dataset and is returned as is.  Raises ``ValueError`` for anything else that is not an OGBench
    single-task environment.
    """
    if isinstance(env_name, str) and env_name.startswith(MINARI_PREFIX):
        return env_name, False
    registry = _ogbench_registry()
    if not isinstance(env_name, str) or "singletask" not in env_name.split("-"):
        raise ValueError(
            f"Unknown evaluation env {env_name!r}: expected an OGBench single-task env id or dataset name, "
            f"e.g. {_EXAMPLES}"
        )
    if env_name in registry:
        return env_name, False
    # Dataset name: drop the dataset type before 'singletask' (the rule of ogbench.make_env_and_datasets).
    splits = env_name.split("-")
    pos = splits.index("singletask")
    env_id = "-".join(splits[: pos - 1] + splits[pos:])
    if pos >= 2 and env_id in registry:
        return env_id, True
    raise ValueError(
        f"Unknown evaluation env {env_name!r}: not a registered OGBench single-task env or dataset name, "
        f"e.g. {_EXAMPLES}"
    )


def max_episode_steps(env_name: str) -> int | None:
    """Time limit of an OGBench single-task env (from its gymnasium spec; no env is built)."""
    env_id, _ = resolve_env_id(env_name)
    if env_id.startswith(MINARI_PREFIX):
        env = make_eval_env(env_id)
        try:
            return env.spec.max_episode_steps if env.spec is not None else None
        finally:
            env.close()
    return gymnasium.spec(env_id).max_episode_steps


class EvalEnvWrapper(gymnasium.Wrapper):
    """Outermost wrapper of evaluation envs: deterministic resets and optional frame recording.

    ``record`` (settable through ``VectorEnv.set_attr``) makes the next episodes store a rendered frame after
    the reset, after every ``frame_skip``-th step and after the episode's last step; :meth:`take_frames`
    returns them as a ``(T, H, W, 3)`` uint8 array and clears them.
    ``info_keys``, if not None, restricts step/reset infos to those keys (OGBench infos carry ~20 arrays per
    step, and batching/pickling them costs about as much as the simulation step itself).
    """

    def __init__(self, env: gymnasium.Env, info_keys: tuple[str, ...] | None = None, frame_skip: int = 1):
        super().__init__(env)
        self.info_keys = info_keys
        self.record = False
        self.frame_skip = max(1, int(frame_skip))
        self._t = 0
        self._frames: list[np.ndarray] = []
        self._render_failed = False

    def _zero_warmstart(self) -> None:
        data = getattr(self.env.unwrapped, "_data", None)
        warmstart = getattr(data, "qacc_warmstart", None)
        if warmstart is not None:
            warmstart[:] = 0.0

    def _capture(self) -> None:
        if not self.record or self._render_failed:
            return
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

    def _filter(self, info: dict[str, Any]) -> dict[str, Any]:
        if self.info_keys is None:
            return info
        return {k: info[k] for k in self.info_keys if k in info}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._zero_warmstart()
        self._frames = []
        self._t = 0
        self._capture()
        return obs, self._filter(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._t += 1
        if self._t % self.frame_skip == 0 or terminated or truncated:
            self._capture()
        return obs, reward, terminated, truncated, self._filter(info)

    def take_frames(self) -> np.ndarray | None:
        frames, self._frames = self._frames, []
        if not frames:
            return None
        return np.stack(frames)


def make_eval_env(env_name: str, **kwargs: Any) -> gymnasium.Env:
    """Build one OGBench single-task env (no dataset download), wrapped in :class:`EvalEnvWrapper`.

    ``env_name`` is an env id (``cube-single-singletask-task1-v0``) or a dataset name
    (``cube-single-play-singletask-task1-v0``, built through ``ogbench.make_env_and_datasets(...,
    env_only=True)``).  ``kwargs`` go to ``gymnasium.make`` / the env constructor (e.g.
    ``max_episode_steps``, ``width``, ``height``); gymnasium's passive env checker is off unless
    ``disable_env_checker=False`` is given.
    """
    env_id, is_dataset_name = resolve_env_id(env_name)
    if env_id.startswith(MINARI_PREFIX):
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


@dataclass
class EvalResult:
    """Outcome of :func:`evaluate_policy`; per-episode arrays are ordered by episode index.

    ``success_rate``/``mean_return`` are NaN when the result holds no episode (a rank with no share).
    """

    success_rate: float
    mean_return: float
    num_episodes: int
    episode_successes: np.ndarray  # (E,) bool
    episode_returns: np.ndarray  # (E,) float64
    episode_lengths: np.ndarray  # (E,) int64
    # (T', H, W, 3) uint8 per recorded counted episode: the frame after the reset, then see ``frame_skip``
    frames: list[np.ndarray] = field(default_factory=list)
    wall_time_s: float = 0.0
    # (E,) int64: global index of each episode (seeded seed + index); None means arange(E)
    episode_ids: np.ndarray | None = None
    # frames of the extra video episodes (not counted in any statistic), in episode order
    videos: list[np.ndarray] = field(default_factory=list)

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
    def from_episodes(
        cls,
        episode_ids: np.ndarray,
        successes: np.ndarray,
        returns: np.ndarray,
        lengths: np.ndarray,
        **extra: Any,
    ) -> EvalResult:
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
    """Takes a whole action chunk ``(h, act_dim)`` per ``step``, executed open loop in the worker.

    Stops early when the episode ends; the reward is the sum over the steps taken and ``info["steps"]`` their
    number, ``info`` otherwise that of the last step.  One vector-env round trip per chunk instead of per step
    (inter-process messaging costs 0.1-0.3 ms a step, a sizeable share of a ~1 ms MuJoCo step).
    """

    def __init__(self, env: gymnasium.Env, chunk_size: int):
        super().__init__(env)
        space = env.action_space
        self.action_space = gymnasium.spaces.Box(
            np.repeat(space.low[None], chunk_size, axis=0),
            np.repeat(space.high[None], chunk_size, axis=0),
            dtype=space.dtype,
        )

    def step(self, chunk):
        total, steps = 0.0, 0
        for action in chunk:
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            steps += 1
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, {**info, "steps": steps}


class _EnvFactory:
    """Picklable env constructor for vector-env workers."""

    def __init__(self, env_name: str, kwargs: dict[str, Any], chunk_size: int, frame_skip: int = 1):
        self.env_name = env_name
        self.kwargs = kwargs
        self.chunk_size = chunk_size
        self.frame_skip = frame_skip

    def __call__(self) -> gymnasium.Env:
        env = make_eval_env(self.env_name, **self.kwargs)
        env.info_keys = ("success",)
        env.frame_skip = max(1, int(self.frame_skip))
        return ChunkStepWrapper(env, self.chunk_size)


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
    env_name: str,
    num_episodes: int,
    num_envs: int,
    seed: int,
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
) -> EvalResult:
    """Roll out ``policy`` for ``num_episodes`` episodes on ``num_envs`` parallel envs (see module docstring).

    ``num_envs == 1`` uses ``SyncVectorEnv`` (in-process); more uses ``AsyncVectorEnv`` with one subprocess
    per env (``context``: multiprocessing start method, platform default if None).  At most one env per
    episode is created.  ``env_kwargs`` are passed to :func:`make_eval_env`.  ``rank``/``world_size``: run
    only episodes ``rank, rank + world_size, ...``.  ``render_episodes``: record the first ones of those;
    ``video_episodes``: extra recorded episodes outside the statistics; ``frame_skip``: record every n-th
    step.  ``episode_info``: call ``policy(obs, episode_ids, chunk_indices)``.
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
    resolve_env_id(env_name)  # fail fast, in this process, on a bad name
    start = time.perf_counter()
    counted = np.arange(rank, num_episodes, world_size, dtype=np.int64)
    render_episodes = max(0, min(render_episodes, len(counted)))
    # Jobs: (episode id, counted, recorded).  Video episodes first so their slow rendering overlaps with the
    # counted episodes instead of trailing them.
    jobs = [(num_episodes + j, False, True) for j in range(video_episodes)]
    jobs += [(int(e), True, j < render_episodes) for j, e in enumerate(counted)]
    outcome = _rollout(
        policy, env_name, jobs, num_envs, seed, chunk_size, env_kwargs, context, frame_skip, episode_info
    )
    successes, returns, lengths, frames = outcome
    mask = np.array([c for _, c, _ in jobs], dtype=bool)
    return EvalResult.from_episodes(
        counted,
        successes[mask],
        returns[mask],
        lengths[mask],
        frames=[frames[j] for j, (_, c, rec) in enumerate(jobs) if c and rec and j in frames],
        videos=[frames[j] for j, (_, c, rec) in enumerate(jobs) if not c and j in frames],
        wall_time_s=time.perf_counter() - start,
    )


def _rollout(
    policy: Policy,
    env_name: str,
    jobs: list[tuple[int, bool, bool]],
    num_envs: int,
    seed: int,
    chunk_size: int,
    env_kwargs: dict[str, Any] | None,
    context: str | None,
    frame_skip: int,
    episode_info: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, np.ndarray]]:
    """Run ``jobs`` (episode id, counted, recorded) in order over a vector env; per-job outcome arrays."""
    num_jobs = len(jobs)
    successes = np.zeros(num_jobs, dtype=bool)
    returns = np.zeros(num_jobs, dtype=np.float64)
    lengths = np.zeros(num_jobs, dtype=np.int64)
    frames: dict[int, np.ndarray] = {}
    if num_jobs == 0:
        return successes, returns, lengths, frames
    ids = np.array([e for e, _, _ in jobs], dtype=np.int64)
    recorded = np.array([r for _, _, r in jobs], dtype=bool)
    any_recorded = bool(recorded.any())
    n = min(num_envs, num_jobs)
    factories = [_EnvFactory(env_name, dict(env_kwargs or {}), chunk_size, frame_skip) for _ in range(n)]
    mode = gymnasium.vector.AutoresetMode.DISABLED
    if n == 1:
        envs = gymnasium.vector.SyncVectorEnv(factories, autoreset_mode=mode)
    else:
        envs = gymnasium.vector.AsyncVectorEnv(factories, autoreset_mode=mode, context=context)
    # Seeds for idle envs (no job left): outside every episode id used here.
    idle_seed = seed + int(ids.max()) + 1

    try:
        act_dim = int(envs.single_action_space.shape[-1])
        job = np.arange(n, dtype=np.int64)  # job run by each env, -1 when idle
        next_job = n
        if any_recorded:
            envs.set_attr("record", [bool(recorded[j]) for j in job])
        obs, _ = envs.reset(seed=[seed + int(ids[j]) for j in job])
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
            info_args = (ids[job[active]], chunk_count[active].copy()) if episode_info else ()
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
                if next_job < num_jobs:
                    job[i] = next_job
                    next_job += 1
                else:
                    job[i] = -1
            if done_count >= num_jobs:
                break
            # Reset every finished env: with its next episode's seed, or (idle envs) with a seed outside the
            # evaluation range so the vector env can keep stepping it.
            seeds = [seed + int(ids[j]) if j >= 0 else idle_seed + i for i, j in enumerate(job)]
            if any_recorded:
                envs.set_attr("record", [bool(j >= 0 and recorded[j]) for j in job])
            reset_obs, _ = envs.reset(seed=seeds, options={"reset_mask": finished.copy()})
            obs = np.where(finished.reshape((n,) + (1,) * (obs.ndim - 1)), reset_obs, obs)
            chunk_count[finished] = 0
            ep_return[finished] = 0.0
            ep_length[finished] = 0
    finally:
        envs.close()
    return successes, returns, lengths, frames
