"""A non-finite seed stops the run naming that seed, or with skip_nonfinite is skipped alone."""

from __future__ import annotations

import copy

import pytest
import torch

from rql_lightning.batch import stack_records
from rql_lightning.errors import NonFiniteError
from rql_lightning.modules.rql import RQLModule
from rql_lightning.seeding import DRAW_STREAM, seeded_generator
from tests.modules.two_mode import two_mode_sampler

KWARGS = dict(obs_dim=1, action_dim=1, chunk_size=1, flow_steps=4, num_critics=2, actor_hidden_dims=[16, 16])
SEEDS = [4, 9]


def batches_with_bad_second_seed():
    sampler = two_mode_sampler()
    good, bad = (sampler.sample(32, torch.Generator().manual_seed(s)) for s in SEEDS)
    bad.observations = torch.full_like(bad.observations, float("nan"))
    return good, bad


def test_non_finite_seed_is_named():
    batched = RQLModule(**KWARGS, critic_hidden_dims=[16, 16], seeds=SEEDS)
    good, bad = batches_with_bad_second_seed()
    with pytest.raises(NonFiniteError, match="seed 9"):
        batched.update(stack_records([good, bad]), batched.replica_draws(32, 0), batched.configure_optimizers())


def test_skip_nonfinite_skips_only_the_bad_seed():
    kwargs = {**KWARGS, "critic_hidden_dims": [16, 16], "skip_nonfinite": True}
    batched = RQLModule(**kwargs, seeds=SEEDS)
    before = copy.deepcopy(batched.state_dict())
    good, bad = batches_with_bad_second_seed()
    batched.update(stack_records([good, bad]), batched.replica_draws(32, 0), batched.configure_optimizers())
    after = batched.state_dict()
    assert int(after["skipped_updates"][1]) == 1 and int(after["skipped_updates"][0]) == 0
    for key, value in after.items():
        if key != "skipped_updates":
            assert torch.equal(value[1], before[key][1]), key  # the bad seed: untouched
    single = batched.replica(0)
    single.load_state_dict({k: v[0] for k, v in before.items()})
    single.update(good, single.draw(32, seeded_generator(SEEDS[0], 0, 0, DRAW_STREAM)), single.configure_optimizers())
    for key, value in single.state_dict().items():
        torch.testing.assert_close(after[key][0], value, rtol=1e-6, atol=1e-7, msg=key)
