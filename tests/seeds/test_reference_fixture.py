"""One S=2 update on the reference fixture: each seed's slice is its own single-seed update, number for number."""

from __future__ import annotations

import numpy as np
import torch

from rql_lightning.batch import Draws, stack_records
from rql_lightning.modules.rql import RQLModule
from tests.modules.reference_fixture import (
    all_params,
    batch_from_fixture,
    draws_from_fixture,
    load_fixture,
    module_from_fixture,
)
from tests.modules.test_parity import close

FIXTURE_SLOT = 1  # the fixture's seed sits second, so a batched update that only got slot 0 right fails


def other_draws(fx: dict) -> Draws:
    """Distinct draws of the same shapes (the other seed's), with RQL's depth mixture."""
    ref = draws_from_fixture(fx)
    g = torch.Generator().manual_seed(123)
    return Draws.sample(ref.bc_noise.shape[0], ref.bc_noise.shape[1], int(fx["flow_steps"]), generator=g)


def test_two_seed_update_reproduces_the_fixture_for_each_seed():
    fx = load_fixture()
    ref = module_from_fixture(fx)  # the fixture's weights, as one seed
    other = module_from_fixture(fx)
    with torch.no_grad():  # the other seed starts elsewhere too
        for p in other.parameters():
            p.mul_(0.9).add_(0.01)
    kwargs = {k: v for k, v in dict(ref.hparams).items() if k != "seed"}
    batched = RQLModule(**kwargs, seeds=[7, 11])
    slots = {FIXTURE_SLOT: ref, 1 - FIXTURE_SLOT: other}
    with torch.no_grad():
        for (_, p), *singles in zip(all_params(batched), *(all_params(slots[i]) for i in (0, 1)), strict=True):
            for i, (_, q) in enumerate(singles):
                p[i].copy_(q)
    batch = batch_from_fixture(fx)
    draws = {FIXTURE_SLOT: draws_from_fixture(fx), 1 - FIXTURE_SLOT: other_draws(fx)}
    stacked_draws = stack_records([draws[0], draws[1]])  # the fixture's policy_noise is NaN: RQL never reads it
    info = batched.update(stack_records([batch, batch]), stacked_draws, batched.configure_optimizers())

    # The fixture's seed: the reference's losses and weights after the update, to the fixture's precision.
    close(info["critic_loss"][FIXTURE_SLOT], fx["out.critic_loss"], rel=2e-6)
    close(info["q"][FIXTURE_SLOT], fx["out.q"], rel=2e-6)
    for key, p in all_params(batched):
        expected = fx[f"after.{key}"]
        tol = dict(rtol=2e-7, atol=1e-7) if key.startswith("target_") else dict(rtol=0, atol=2e-6)
        np.testing.assert_allclose(p[FIXTURE_SLOT].detach().numpy(), expected, err_msg=key, **tol)

    # The other seed: exactly its own single-seed update with its own draws.
    single_info = other.update(batch, draws[1 - FIXTURE_SLOT], other.configure_optimizers())
    close(info["critic_loss"][1 - FIXTURE_SLOT], single_info["critic_loss"].numpy(), rel=2e-6)
    for (key, p), (_, q) in zip(all_params(batched), all_params(other), strict=True):
        torch.testing.assert_close(p[1 - FIXTURE_SLOT], q, rtol=1e-6, atol=1e-7, msg=key)
    assert not np.allclose(p[0].detach().numpy(), p[1].detach().numpy())
