"""Seeds are a fixed function of (seed, rank, step, stream): the same numbers on every Python and machine."""

from __future__ import annotations

import torch

from rql_lightning.seeding import BATCH_STREAM, DRAW_STREAM, seeded_generator, stream_seed


def test_stream_seeds_are_pinned():
    # SeedSequence is numpy's documented algorithm; these numbers must not move with an upgrade
    # (a resumed run would otherwise draw other batches than the uninterrupted one).
    assert stream_seed(0, 0, 0, BATCH_STREAM) == 3783394973971166492
    assert stream_seed(3, 1, 12345, DRAW_STREAM) == 6502620181391959456
    assert stream_seed(2**64 - 1, 2**40, 10**12, 7) == 6736514771576519640
    assert stream_seed(-1, 2**40, 10**12, 7) == stream_seed(2**64 - 1, 2**40, 10**12, 7)  # taken mod 2**64


def test_neighbouring_tuples_get_distinct_seeds():
    tuples = [(s, r, k, st) for s in range(3) for r in range(3) for k in range(50) for st in range(3)]
    # A wide integer must not spill into its neighbour's place: (2**32, 0) is not (0, 1).
    tuples += [(2**32, 0, 0, 0), (0, 1, 0, 0), (1, 2**32, 0, 0)]
    assert len({stream_seed(*t) for t in tuples}) == len(set(tuples))


def test_seeded_generator_repeats_its_stream_and_reuses_the_given_generator():
    g = torch.Generator()
    a = torch.rand(4, generator=seeded_generator(0, 1, 7, DRAW_STREAM, generator=g))
    assert seeded_generator(0, 1, 7, DRAW_STREAM, generator=g) is g
    torch.testing.assert_close(torch.rand(4, generator=g), a)
    assert not torch.equal(torch.rand(4, generator=seeded_generator(0, 0, 7, DRAW_STREAM)), a)
