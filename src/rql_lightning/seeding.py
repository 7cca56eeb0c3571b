"""Seeds that are functions of (run seed, rank, step, stream) only.

Batches and draws of training step ``k`` on rank ``r`` come from generators seeded here, so a
resumed run repeats exactly what an uninterrupted one would do, and DDP ranks never share
random numbers. Integer tuples hash identically in every process (no hash randomisation).
"""

from __future__ import annotations

import torch

BATCH_STREAM = 0
DRAW_STREAM = 1


def stream_seed(seed: int, rank: int, step: int, stream: int) -> int:
    return hash((int(seed), int(rank), int(step), int(stream))) & (2**63 - 1)


def seeded_generator(
    seed: int, rank: int, step: int, stream: int, device: torch.device | str = "cpu", generator=None
) -> torch.Generator:
    """A generator on ``device`` seeded for (seed, rank, step, stream); reuses ``generator`` if given."""
    g = generator if generator is not None else torch.Generator(device=device)
    g.manual_seed(stream_seed(seed, rank, step, stream))
    return g
