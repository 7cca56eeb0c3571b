"""The evaluation protocol for a trained module, without a Trainer: what the callback and ``rql-eval`` run.

Module contract
    ``module.act(obs: np.ndarray (N, obs_dim), generator: torch.Generator) -> (N, h, act_dim)`` (numpy or
    tensor), and ``module.chunk_size`` (or ``module.hparams.chunk_size``): ``h``, the actions executed open
    loop per policy call.  Optional ``module.act_seeded(obs, seeds, generator)``: row ``i`` as ``act`` gives
    it after ``generator.manual_seed(seeds[i])``, in one batched call (every ``FlowQModule`` has it).  The
    policy runs under ``torch.no_grad()`` with every submodule in eval mode; each submodule's train/eval flag
    is restored afterwards, and torch/numpy global RNG states are left untouched.

Policy noise
    ``episode_noise=True`` (default): the noise of chunk ``c`` of episode ``k`` comes from the seed
    ``stream_seed(seed, k, c, EVAL_NOISE_STREAM)``, so an episode's outcome is a function of the weights, the
    seed and the episode only, identical whatever ``num_envs`` and the number of DDP ranks.  All running
    envs' rows go through one batched ``act_seeded`` call per round (row by row through ``act`` for a module
    without it).  ``episode_noise=False``: one ``act`` call per round with the generator seeded once per
    evaluation (deterministic for a given ``num_envs`` and world size only).

Episodes
    Episode ``k`` is reset with seed ``seed + k`` (see :mod:`rql_lightning.envs.rollout`); ``video_episodes``
    extra episodes, rendered and left out of the statistics, come back in ``EvalResult.videos``.

Seed-batched modules
    A module holding ``S`` runs (``module.seeds``) is evaluated by :mod:`rql_lightning.callbacks.seed_eval`:
    each seed with exactly these episodes and this noise of its own run ``seed=s``, in one vector env.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from rql_lightning.envs import EvalEnvs, EvalResult, evaluate_policy
from rql_lightning.seeding import stream_seed

__all__ = [
    "EVAL_NOISE_STREAM",
    "ModulePolicy",
    "chunk_size_of",
    "device_of",
    "evaluate_module",
    "noise_generator",
    "policy_mode",
    "render_kwargs",
]

EVAL_NOISE_STREAM = 2  # stream id of the per-(episode, chunk) policy-noise seeds (0, 1: training batches, draws)


def chunk_size_of(module: nn.Module) -> int:
    """``module.chunk_size``, else its ``hparams["chunk_size"]``: actions per policy call."""
    size = getattr(module, "chunk_size", None)
    if size is None:
        size = dict(getattr(module, "hparams", {})).get("chunk_size")
    if size is None:
        raise ValueError(f"{type(module).__name__} has no chunk_size (attribute or hyperparameter)")
    return int(size)


def device_of(module: nn.Module) -> torch.device:
    """A LightningModule's ``device``, else that of the first parameter (CPU without any)."""
    device = getattr(module, "device", None)
    if isinstance(device, torch.device):
        return device
    return next((p.device for p in module.parameters()), torch.device("cpu"))


def noise_generator(device: torch.device) -> torch.Generator:
    """A generator on ``device`` (CPU where the device has none)."""
    try:
        return torch.Generator(device=device)
    except RuntimeError:
        return torch.Generator()


class ModulePolicy:
    """``module`` as the rollout's policy: ``(obs, episode_ids, chunk_indices) -> chunks`` with per-(episode,
    chunk) noise seeds, or ``(obs) -> chunks`` drawing from ``generator`` in sequence (``episode_noise=False``)."""

    def __init__(self, module: nn.Module, seed: int, generator: torch.Generator, episode_noise: bool = True):
        self.module = module
        self.seed = int(seed)
        self.generator = generator
        self.episode_noise = bool(episode_noise)

    def __call__(self, obs: np.ndarray, episodes: np.ndarray | None = None, chunks: np.ndarray | None = None):
        if not self.episode_noise:
            return self.module.act(obs, self.generator)
        seeds = [
            stream_seed(self.seed, int(e), int(c), EVAL_NOISE_STREAM) for e, c in zip(episodes, chunks, strict=True)
        ]
        if hasattr(self.module, "act_seeded"):  # one batched call, each row's noise from its own seed
            return self.module.act_seeded(obs, seeds, self.generator)
        out = []
        for i in range(obs.shape[0]):
            self.generator.manual_seed(seeds[i])
            a = self.module.act(obs[i : i + 1], self.generator)
            out.append(a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a))
        return np.concatenate(out)


def render_kwargs(env_kwargs: dict[str, Any] | None, rendering: bool, width: int, height: int) -> dict[str, Any]:
    """The env's keyword arguments; when something is rendered, the frame size unless ``env_kwargs`` sets it."""
    kwargs = dict(env_kwargs or {})
    if rendering:
        kwargs.setdefault("width", int(width))
        kwargs.setdefault("height", int(height))
    return kwargs


@contextlib.contextmanager
def policy_mode(module: nn.Module) -> Iterator[None]:
    """Eval mode and no grad for the rollout; train flags and global RNG states as they were afterwards."""
    device = device_of(module)
    fork_devices = []
    if device.type == "cuda":
        fork_devices = [device.index if device.index is not None else torch.cuda.current_device()]
    modes = [(m, m.training) for m in module.modules()]
    np_state = np.random.get_state()
    module.eval()
    try:
        with torch.random.fork_rng(devices=fork_devices), torch.no_grad():
            yield
    finally:
        for m, training in modes:
            m.training = training
        np.random.set_state(np_state)


def evaluate_module(
    module: nn.Module,
    env_name: str,
    *,
    num_episodes: int,
    num_envs: int = 1,
    seed: int = 0,
    video_episodes: int = 0,
    frame_skip: int = 3,
    width: int = 128,
    height: int = 128,
    render_episodes: int = 0,
    env_kwargs: dict[str, Any] | None = None,
    episode_noise: bool = True,
    rank: int = 0,
    world_size: int = 1,
    envs: EvalEnvs | None = None,
    generator: torch.Generator | None = None,
) -> EvalResult:
    """Evaluate ``module`` on ``env_name`` with the training-time protocol (module docstring); no Trainer.

    ``num_episodes`` counted episodes (episode ``k`` seeded ``seed + k``) on ``num_envs`` parallel envs;
    ``video_episodes`` extra rendered episodes in ``EvalResult.videos`` (``(T, height, width, 3)`` uint8 each,
    every ``frame_skip``-th frame; needs ``MUJOCO_GL=egl`` or ``osmesa``); ``render_episodes``: frames of the
    first counted episodes in ``EvalResult.frames``.  ``width``/``height`` apply when something is rendered,
    unless ``env_kwargs`` sets them.  ``rank``/``world_size``: this rank's share only (no gathering).
    ``envs``: keep the vector env alive for later calls (the caller closes it); ``generator``: reuse one.
    """
    kwargs = render_kwargs(env_kwargs, bool(video_episodes or render_episodes), width, height)
    if generator is None:
        generator = noise_generator(device_of(module))
    generator.manual_seed(int(seed))
    policy = ModulePolicy(module, seed, generator, episode_noise)
    with policy_mode(module):
        return evaluate_policy(
            policy,
            env_name,
            num_episodes=num_episodes,
            num_envs=num_envs,
            seed=seed,
            chunk_size=chunk_size_of(module),
            render_episodes=render_episodes,
            env_kwargs=kwargs,
            rank=rank,
            world_size=world_size,
            video_episodes=video_episodes,
            frame_skip=frame_skip if video_episodes else 1,
            episode_info=episode_noise,
            envs=envs,
        )
