"""Seeds that are functions of (run seed, rank, step, stream) only: a resumed run repeats exactly what an
uninterrupted one would do, and DDP ranks never share random numbers. The hash is numpy's ``SeedSequence`` (a
documented, versioned algorithm; Python promises no stable hash of a tuple across versions).
"""

from __future__ import annotations

import numpy as np
import torch

# Every random stream's id, here so no two share one (results are pinned to these values).
BATCH_STREAM = 0  # training batches (data/windows.py)
DRAW_STREAM = 1  # training draws (modules/base.py)
EVAL_NOISE_STREAM = 2  # evaluation policy noise per (episode, chunk) (evaluator.py)
EXPLORE_STREAM = 101  # online exploration noise per chunk (online/phase.py)
RESET_STREAM = 102  # online episode reset seeds (online/phase.py)

_WORD = 2**32


def stream_seed(seed: int, rank: int, step: int, stream: int) -> int:
    """A 63-bit seed for (seed, rank, step, stream), each taken mod ``2**64`` (so ``-1`` is a seed too).

    Each integer enters the ``SeedSequence`` as two fixed 32-bit words, so distinct tuples
    never share an entropy pool (numpy's own encoding of a list of ints has variable width)."""
    words = []
    for value in (seed, rank, step, stream):
        value = int(value) % _WORD**2
        words += [value % _WORD, value // _WORD]
    state = np.random.SeedSequence(words).generate_state(1, np.uint64)
    return int(state[0]) & (2**63 - 1)


def seeded_generator(
    seed: int, rank: int, step: int, stream: int, generator: torch.Generator | None = None
) -> torch.Generator:
    """A generator seeded for (seed, rank, step, stream): ``generator`` (on its device) if given, else a CPU one."""
    g = generator if generator is not None else torch.Generator()
    return g.manual_seed(stream_seed(seed, rank, step, stream))  # torch returns the generator itself
