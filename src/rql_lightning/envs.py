"""OGBench single-task environments and vectorised, chunked policy rollouts for evaluation.

Two entry points:

* :func:`make_eval_env` builds one OGBench single-task environment from an environment id
  (``cube-single-singletask-task1-v0``) or a dataset name (``cube-single-play-singletask-task1-v0``).
* :func:`evaluate_policy` runs ``num_episodes`` episodes of an action-chunking policy over ``num_envs``
  parallel copies of the environment and returns an :class:`EvalResult`.

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

Action chunks
    ``policy(obs)`` maps observations ``(N, *obs_shape)`` to chunks ``(N, H, act_dim)`` with
    ``H >= chunk_size``; the first ``chunk_size`` actions are executed open loop before the policy is asked
    again for that environment.  Each call batches every environment that needs a new chunk at that step
    (with lockstep episodes: all running environments every ``chunk_size`` steps).  Actions are clipped to
    ``[-1, 1]``.  Floating-point observations are passed as ``float32``.

Episode accounting
    The vector env runs with ``AutoresetMode.DISABLED``; finished environments are reset explicitly with the
    next episode's seed, so each episode is counted exactly once and exactly ``num_episodes`` are run.  An
    environment with no episodes left keeps stepping with zero actions (the vector API steps all
    environments together) and its output is ignored.  Success is ``info["success"]`` at an episode's last
    step; the return is the sum of its rewards.

Rendering
    ``render_episodes=R`` records RGB frames of episodes ``0..R-1`` (``env.unwrapped.render()``, the
    ``front`` camera, ``width``/``height`` env kwargs, 200x200 by default; ``T + 1`` frames for a
    ``T``-step episode).  Software EGL renders a 200x200 frame in about 0.1 s, so keep ``R`` small.
    MuJoCo offscreen rendering needs a GL backend chosen *before* MuJoCo is imported: on a headless
    machine launch with ``MUJOCO_GL=egl`` (or ``osmesa``).  If rendering fails, a warning is issued and
    ``frames`` stays empty; evaluation itself is unaffected.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

__all__ = [
    "EvalResult",
    "EvalEnvWrapper",
    "evaluate_policy",
    "make_eval_env",
    "max_episode_steps",
    "resolve_env_id",
]

_EXAMPLES = "cube-single-singletask-task1-v0, cube-single-play-singletask-task1-v0, scene-singletask-task2-v0"

Policy = Callable[[np.ndarray], Any]


def _ogbench_registry() -> dict[str, Any]:
    import ogbench  # noqa: F401  (importing registers the OGBench environments with gymnasium)

    return gymnasium.registry


def resolve_env_id(env_name: str) -> tuple[str, bool]:
    """Map an OGBench single-task env id or dataset name to its gymnasium id.

    Returns ``(env_id, is_dataset_name)``.  Raises ``ValueError`` for anything that is not an OGBench
    single-task environment.
    """
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
    return gymnasium.spec(env_id).max_episode_steps


class EvalEnvWrapper(gymnasium.Wrapper):
    """Outermost wrapper of evaluation envs: deterministic resets and optional frame recording.

    ``record`` (settable through ``VectorEnv.set_attr``) makes the next episodes store a rendered frame after
    every reset/step; :meth:`take_frames` returns them as a ``(T, H, W, 3)`` uint8 array and clears them.
    ``info_keys``, if not None, restricts step/reset infos to those keys (OGBench infos carry ~20 arrays per
    step, and batching/pickling them costs about as much as the simulation step itself).
    """

    def __init__(self, env: gymnasium.Env, info_keys: tuple[str, ...] | None = None):
        super().__init__(env)
        self.info_keys = info_keys
        self.record = False
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
        self._capture()
        return obs, self._filter(info)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
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
    kwargs.setdefault("disable_env_checker", True)
    if is_dataset_name:
        import ogbench

        env = ogbench.make_env_and_datasets(env_name, env_only=True, **kwargs)
    else:
        env = gymnasium.make(env_id, **kwargs)
    return EvalEnvWrapper(env)


@dataclass
class EvalResult:
    """Outcome of :func:`evaluate_policy`; per-episode arrays are ordered by episode index."""

    success_rate: float
    mean_return: float
    num_episodes: int
    episode_successes: np.ndarray  # (E,) bool
    episode_returns: np.ndarray  # (E,) float64
    episode_lengths: np.ndarray  # (E,) int64
    # (T + 1, H, W, 3) uint8 per rendered episode: the frame after reset, then one after each step
    frames: list[np.ndarray] = field(default_factory=list)
    wall_time_s: float = 0.0

    @property
    def mean_length(self) -> float:
        return float(np.mean(self.episode_lengths)) if self.num_episodes else 0.0

    def summary(self) -> str:
        return (
            f"success_rate={self.success_rate:.3f} return={self.mean_return:.2f} "
            f"length={self.mean_length:.1f} episodes={self.num_episodes} ({self.wall_time_s:.1f}s)"
        )


class _EnvFactory:
    """Picklable env constructor for vector-env workers."""

    def __init__(self, env_name: str, kwargs: dict[str, Any]):
        self.env_name = env_name
        self.kwargs = kwargs

    def __call__(self) -> gymnasium.Env:
        env = make_eval_env(self.env_name, **self.kwargs)
        env.info_keys = ("success",)
        return env


def _to_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # torch.Tensor without importing torch here
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _policy_chunks(policy: Policy, obs: np.ndarray, chunk_size: int, act_dim: int) -> np.ndarray:
    out = _to_numpy(policy(obs))
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
) -> EvalResult:
    """Roll out ``policy`` for ``num_episodes`` episodes on ``num_envs`` parallel envs (see module docstring).

    ``num_envs == 1`` uses ``SyncVectorEnv`` (in-process); more uses ``AsyncVectorEnv`` with one subprocess
    per env (``context``: multiprocessing start method, platform default if None).  At most
    ``num_episodes`` envs are created.  ``env_kwargs`` are passed to :func:`make_eval_env`.
    """
    if num_episodes < 1:
        raise ValueError(f"num_episodes must be >= 1, got {num_episodes}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    resolve_env_id(env_name)  # fail fast, in this process, on a bad name
    start = time.perf_counter()
    n = min(num_envs, num_episodes)
    render_episodes = max(0, min(render_episodes, num_episodes))
    factories = [_EnvFactory(env_name, dict(env_kwargs or {})) for _ in range(n)]
    mode = gymnasium.vector.AutoresetMode.DISABLED
    if n == 1:
        envs = gymnasium.vector.SyncVectorEnv(factories, autoreset_mode=mode)
    else:
        envs = gymnasium.vector.AsyncVectorEnv(factories, autoreset_mode=mode, context=context)

    successes = np.zeros(num_episodes, dtype=bool)
    returns = np.zeros(num_episodes, dtype=np.float64)
    lengths = np.zeros(num_episodes, dtype=np.int64)
    frames: dict[int, np.ndarray] = {}
    try:
        act_shape = envs.single_action_space.shape
        act_dim = int(act_shape[0])
        episode = np.arange(n, dtype=np.int64)  # episode index run by each env, -1 when idle
        next_episode = n
        if render_episodes:
            envs.set_attr("record", [bool(e < render_episodes) for e in episode])
        obs, _ = envs.reset(seed=[seed + int(e) for e in episode])
        chunks = np.zeros((n, chunk_size, act_dim), dtype=np.float32)
        chunk_pos = np.full(n, chunk_size, dtype=np.int64)  # == chunk_size: chunk spent
        ep_return = np.zeros(n, dtype=np.float64)
        ep_length = np.zeros(n, dtype=np.int64)
        done_count = 0
        rows = np.arange(n)
        while done_count < num_episodes:
            active = episode >= 0
            need = active & (chunk_pos >= chunk_size)
            if need.any():
                batch = obs[need]
                if np.issubdtype(batch.dtype, np.floating):
                    batch = batch.astype(np.float32, copy=False)
                chunks[need] = _policy_chunks(policy, batch, chunk_size, act_dim)
                chunk_pos[need] = 0
            actions = chunks[rows, np.minimum(chunk_pos, chunk_size - 1)]
            actions[~active] = 0.0
            chunk_pos[active] += 1
            obs, reward, terminated, truncated, info = envs.step(actions)
            ep_return += reward
            ep_length += 1
            finished = terminated | truncated
            if not finished.any():
                continue
            success = np.asarray(info.get("success", np.zeros(n, dtype=bool)), dtype=bool)
            recorded = None
            if render_episodes and np.any(finished & active & (episode < render_episodes)):
                recorded = envs.call("take_frames")
            for i in np.flatnonzero(finished):
                e = int(episode[i])
                if e >= 0:
                    successes[e] = bool(success[i])
                    returns[e] = ep_return[i]
                    lengths[e] = ep_length[i]
                    done_count += 1
                    if recorded is not None and recorded[i] is not None and e < render_episodes:
                        frames[e] = recorded[i]
                if next_episode < num_episodes:
                    episode[i] = next_episode
                    next_episode += 1
                else:
                    episode[i] = -1
            if done_count >= num_episodes:
                break
            # Reset every finished env: with the next episode's seed, or (idle envs) with a seed outside the
            # evaluation range so the vector env can keep stepping it.
            seeds = [seed + int(e) if e >= 0 else seed + num_episodes + i for i, e in enumerate(episode)]
            if render_episodes:
                envs.set_attr("record", [bool(0 <= e < render_episodes) for e in episode])
            reset_obs, _ = envs.reset(seed=seeds, options={"reset_mask": finished.copy()})
            obs = np.where(finished.reshape((n,) + (1,) * (obs.ndim - 1)), reset_obs, obs)
            chunk_pos[finished] = chunk_size
            ep_return[finished] = 0.0
            ep_length[finished] = 0
    finally:
        envs.close()

    return EvalResult(
        success_rate=float(successes.mean()),
        mean_return=float(returns.mean()),
        num_episodes=num_episodes,
        episode_successes=successes,
        episode_returns=returns,
        episode_lengths=lengths,
        frames=[frames[e] for e in sorted(frames)],
        wall_time_s=time.perf_counter() - start,
    )
