"""The evaluator: a module's replicas rolled out (:mod:`rql_lightning.envs`), gathered over DDP ranks.

A single run is one replica (key ``""``, metrics ``eval/*``), a seed batch one per seed (``seed<s>/eval/*``), a
multi-task batch one per (task, seed) (``task<t>/seed<s>/eval/*``) in its task's env. Chunk ``c`` of episode ``k``
draws noise from ``stream_seed(seed, k, c, EVAL_NOISE_STREAM)``: an outcome depends on the weights, seed and episode.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from rql_lightning.envs import EvalEnvs, EvalResult, check_rollout_counts, evaluate_policy, resolve_env_id
from rql_lightning.naming import parse_singletask, singletask_name_of
from rql_lightning.seeding import EVAL_NOISE_STREAM, stream_seed


def task_env_name(env_name: str, task: int) -> str:
    """``cube-double-singletask-task1-v0``, 3 -> ``cube-double-singletask-task3-v0``."""
    return singletask_name_of(parse_singletask(env_name).dataset, task)


def replicas_of(module: Any) -> list[tuple[str, int | None, int]] | None:
    """``(key, task or None, seed)`` per replica of a batched module (``module.seeds``, ``task_ids``,
    ``replica_names``); None for a single run."""
    seeds = getattr(module, "seeds", None)
    if not (isinstance(seeds, list | tuple) and seeds and all(isinstance(s, int) for s in seeds)):
        return None
    tasks = getattr(module, "task_ids", None) or [None] * len(seeds)
    return [(key, t, int(s)) for key, t, s in zip(module.replica_names, tasks, seeds, strict=True)]


def metric_key(replica_key: str, name: str) -> str:
    """``eval/return`` of replica ``seed3`` is ``seed3/eval/return``; of a single run (key ``""``) itself."""
    return f"{replica_key}/{name}" if replica_key else name


def act(module: Any, obs: np.ndarray, noise_seeds: np.ndarray | None, generator: torch.Generator) -> Any:
    """The module's ``act``: ``obs (R, M, O)`` -> chunks ``(R, M, h, A)``, row ``(r, m)``'s noise drawn after seeding
    ``generator`` with ``noise_seeds[r, m]`` (``-1``: padding, zero noise; ``None``: R = 1, drawn in sequence)."""
    dim, device = module.noise_dim, generator.device
    if noise_seeds is None:
        noise = torch.randn(1, obs.shape[1], dim, generator=generator, device=device)
    else:
        noise = torch.zeros(*noise_seeds.shape, dim, device=device)
        for j in zip(*np.nonzero(noise_seeds >= 0), strict=True):
            generator.manual_seed(int(noise_seeds[j]))
            noise[j] = torch.randn(1, dim, generator=generator, device=device)[0]
    obs_t, noise = torch.as_tensor(obs, dtype=torch.float32).to(module.device), noise.to(module.device)
    if getattr(module, "seeds", None) is None:  # a single run acts without a replica axis
        return module.act(obs_t[0], noise[0])[None]
    return module.act(obs_t, noise)


@contextlib.contextmanager
def _policy_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode and no grad for the rollout; train flags and global RNG states as they were afterwards."""
    device = module.device
    fork = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    modes = [(m, m.training) for m in module.modules()]
    np_state = np.random.get_state()
    module.eval()
    try:
        with torch.random.fork_rng(devices=fork), torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
        np.random.set_state(np_state)


class Evaluator(contextlib.AbstractContextManager):
    """The evaluation settings and the vector env kept alive between evaluations (``envs``, closed on exit).

    ``seed``: a single run's (replicas carry their own); ``video_episodes`` extra episodes rendered every
    ``video_frame_skip``-th step at ``video_width`` x ``video_height`` into ``EvalResult.videos``;
    ``episode_noise=False`` (one replica): noise drawn in sequence from a generator seeded once per evaluation.
    """

    def __init__(
        self,
        env_name: str | None,
        num_episodes: int,
        num_envs: int = 1,
        seed: int = 0,
        video_episodes: int = 0,
        video_frame_skip: int = 3,
        video_width: int = 128,
        video_height: int = 128,
        env_kwargs: dict[str, Any] | None = None,
        episode_noise: bool = True,
    ) -> None:
        if env_name is not None:
            resolve_env_id(env_name)  # fail at construction on a bad name, not hours into training
        check_rollout_counts(num_episodes, num_envs, video_episodes, video_frame_skip)
        self.env_name, self.num_episodes, self.num_envs, self.seed = env_name, int(num_episodes), int(num_envs), seed
        self.video_episodes, self.frame_skip = int(video_episodes), int(video_frame_skip)
        video = {"width": int(video_width), "height": int(video_height)} if video_episodes else {}
        self.env_kwargs = {**video, **(env_kwargs or {})}  # the env's own width/height, if given, win
        self.episode_noise = bool(episode_noise)
        self.envs = EvalEnvs()  # every replica's envs, kept alive between evaluations

    def replicas(self, module: Any) -> dict[str, tuple[int, str]]:
        """Metric key -> (seed, env name) of each replica of a batched module, in its task's variant of ``env_name``,
        else of the single run."""
        if self.env_name is None:
            raise ValueError("env_name is not known yet: pass it, or let the callback's setup() take the datamodule's")
        replicas = replicas_of(module) or [("", None, int(self.seed))]
        return {k: (s, self.env_name if t is None else task_env_name(self.env_name, t)) for k, t, s in replicas}

    def run(self, module: nn.Module, rank: int = 0, world_size: int = 1, render: bool = True) -> dict[str, EvalResult]:
        """This rank's share of one evaluation, per replica key (no gathering); ``render=False``: no videos (DDP
        ranks other than 0)."""
        replicas = self.replicas(module)
        if not self.episode_noise and len(replicas) > 1:
            raise ValueError("a seed-batched module is evaluated with episode_noise=True (each seed's own noise)")
        seeds = [seed for seed, _ in replicas.values()]
        try:
            generator = torch.Generator(device=module.device).manual_seed(seeds[0])
        except RuntimeError:  # a device without generators
            generator = torch.Generator().manual_seed(seeds[0])

        def policy(obs: np.ndarray, reps: np.ndarray | None = None, *episode: np.ndarray) -> Any:
            """Rows (grouped by replica) -> a ``(R, rows, O)`` grid padded to a power of two rows per replica (few
            shapes for a compiled policy), each row's noise seeded by its (replica seed, episode, chunk)."""
            if reps is None:
                return act(module, obs[None], None, generator)[0]
            counts = np.bincount(reps, minlength=len(replicas))
            slot = np.arange(len(reps)) - (np.cumsum(counts) - counts)[reps]
            grid = np.zeros((len(replicas), 1 << int(counts.max() - 1).bit_length(), *obs.shape[1:]), obs.dtype)
            grid[reps, slot] = obs
            noise_seeds = np.full(grid.shape[:2], -1, dtype=np.int64)
            noise_seeds[reps, slot] = [
                stream_seed(seeds[r], int(k), int(c), EVAL_NOISE_STREAM) for r, k, c in zip(reps, *episode, strict=True)
            ]
            return act(module, grid, noise_seeds, generator)[reps, slot]

        v = self.video_episodes if render else 0
        with _policy_mode(module):
            results = evaluate_policy(
                policy,
                [env_name for _, env_name in replicas.values()],
                num_episodes=self.num_episodes,
                num_envs=self.num_envs,
                seeds=seeds,
                chunk_size=int(module.chunk_size),
                env_kwargs=self.env_kwargs,
                rank=rank,
                world_size=world_size,
                video_episodes=v,
                frame_skip=self.frame_skip if v else 1,
                episode_info=self.episode_noise,
                envs=self.envs,
            )
        return dict(zip(replicas, results, strict=True))

    def __exit__(self, *exc: object) -> None:
        self.envs.close()


def evaluate(module: nn.Module, env_name: str, **settings: Any) -> dict[str, EvalResult]:
    """One whole single-process evaluation of ``module`` (:class:`Evaluator` settings), per replica key."""
    with Evaluator(env_name, **settings) as evaluator:
        return evaluator.run(module)


def gather(pl_module: Any, local: dict[str, EvalResult], num_episodes: int, world_size: int) -> dict[str, EvalResult]:
    """Every rank's episodes of one evaluation, per replica key (a collective): tables of (replica, episode id,
    success, return, length) padded with id -1; the slowest rank's wall time. Float64 holds them exactly (float32
    on MPS, which has no float64)."""
    dtype = torch.float32 if pl_module.device.type == "mps" else torch.float64
    table = np.full((math.ceil(len(local) * num_episodes / world_size), 5), -1.0)
    rows = [
        np.stack(
            [np.full(r.num_episodes, i), r.episode_ids, r.episode_successes, r.episode_returns, r.episode_lengths], 1
        )
        for i, r in enumerate(local.values())
    ]
    mine = np.concatenate(rows)
    table[: len(mine)] = mine
    gathered = pl_module.all_gather(torch.as_tensor(table, dtype=dtype)).reshape(-1, 5).cpu().numpy()
    wall = float(pl_module.all_gather(torch.tensor(max(r.wall_time_s for r in local.values()), dtype=dtype)).max())
    out = {}
    for i, (key, r) in enumerate(local.items()):
        got = gathered[(gathered[:, 1] >= 0) & (gathered[:, 0] == i)]
        ids = got[:, 1].astype(np.int64)
        if sorted(ids.tolist()) != list(range(num_episodes)):
            raise RuntimeError(f"evaluation gathered episodes {sorted(ids.tolist())}, expected 0..{num_episodes - 1}")
        out[key] = EvalResult.from_episodes(*got[:, 1:].T, videos=r.videos, wall_time_s=wall)  # videos: rank 0's
    return out


def report(trainer: Any, metrics: dict[str, float], step: int | None = None) -> None:
    """Publish ``metrics`` in ``trainer.callback_metrics`` and, with ``step``, log them to every logger from global
    rank 0 (also in ``on_train_end``, where ``LightningModule.log`` is not allowed)."""
    trainer.callback_metrics.update({k: torch.tensor(float(v), dtype=torch.float64) for k, v in metrics.items()})
    if step is not None and trainer.is_global_zero:
        for logger in trainer.loggers:
            logger.log_metrics(dict(metrics), step=step)
