"""How the online phase acts: the release's exploration policy, and the seeds of its noise and resets.

The release explores with ``agent.sample_actions(obs, temperature=1)``: for RQL that is the flow of
the *online* actor (``temperature > 0`` selects ``actor`` over ``target_actor``) from fresh noise
``x_0 ~ N(0, I)``, ``F`` Euler steps, clipped to ``[-1, 1]``; evaluation (``temperature=0``) takes the
EMA actor. FQL's release samples its online one-step policy either way. So:

* a module with an ``explore_chunks(obs, noise)`` method (a user's method) acts with it;
* a module whose evaluation policy is the base class's EMA flow (RQL, BC) explores with its online
  flow ``module.policy``;
* a module with its own evaluation policy (FQL's one-step policy) explores with that policy.

Chunk ``c``'s noise and episode ``e``'s reset seed are functions of (run seed, ``c`` or ``e``) only.
"""

from __future__ import annotations

import numpy as np
import torch

from rql_lightning.modules.base import FlowQModule
from rql_lightning.seeding import EXPLORE_STREAM, RESET_STREAM, seeded_generator, stream_seed


def chunk_noise(seed: int, chunk: int, chunk_dim: int) -> torch.Tensor:
    """``x_0 (1, D)`` of online chunk ``chunk``, drawn on the CPU (the same numbers on any device)."""
    return torch.randn(1, chunk_dim, generator=seeded_generator(seed, 0, chunk, EXPLORE_STREAM))


def reset_seed(seed: int, episode: int) -> int:
    """The env seed of online episode ``episode``."""
    return stream_seed(seed, 0, episode, RESET_STREAM) % 2**31


@torch.no_grad()
def explore_chunk(module: FlowQModule, observation: np.ndarray, noise: torch.Tensor) -> np.ndarray:
    """One chunk to execute, ``(h, A)``, for ``observation (O,)``."""
    obs = torch.as_tensor(observation, dtype=torch.float32, device=module.device).unsqueeze(0)
    noise = noise.to(module.device)
    if hasattr(module, "explore_chunks"):
        chunks = module.explore_chunks(obs, noise)
    elif type(module).sample_chunks is FlowQModule.sample_chunks:
        chunks = module.policy.split_chunk(module.policy.sample(obs, noise))
    else:
        chunks = module.sample_chunks(obs, noise)
    return chunks[0].float().cpu().numpy()
