"""``model.virtual_states``: each mode builds the states it names, and nothing else in the update moves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rql_lightning import losses
from rql_lightning.batch import ChunkBatch, Draws
from rql_lightning.errors import UserError
from rql_lightning.modules.rql import RQLModule
from tests.diagnostics.known_flows import KnownFlow
from tests.modules.reference_fixture import batch_from_fixture, draws_from_fixture, load_fixture, module_from_fixture

C = torch.tensor([0.5, -0.25, 1.0])  # the handcrafted policy's constant velocity


def handcrafted(batch_size: int = 16, steps: int = 8):
    g = torch.Generator().manual_seed(0)
    obs, chunk = torch.randn(batch_size, 2, generator=g), torch.rand(batch_size, 3, generator=g) * 2 - 1
    ones = torch.ones(batch_size)
    batch = ChunkBatch(obs, chunk, torch.zeros(batch_size, 1), obs, ones, ones, torch.ones_like(chunk))
    draws = Draws.sample(batch_size, 3, steps, generator=g)
    return KnownFlow(lambda s, x, f: C.expand_as(x), flow_steps=steps), batch, draws


def test_each_mode_builds_the_states_it_names():
    policy, batch, draws = handcrafted()
    a, x0, d = batch.action_chunks, draws.policy_noise, draws.depth.unsqueeze(-1)
    f = 1 - d
    states = {m: losses.virtual_states(policy, batch, draws, m) for m in losses.VIRTUAL_STATES}
    # reversal: back along v = C from the chunk; interpolation: the straight path; forward: from x0 along C.
    expected = {"reversal": a - C * d, "interpolation": (1 - f) * x0 + f * a, "forward": x0 + C * f}
    for mode, (x_f, f_mode) in states.items():
        torch.testing.assert_close(x_f, expected[mode], msg=mode)
        assert torch.equal(f_mode, states["reversal"][1]), mode  # one f for all modes, bit for bit
        assert not x_f.requires_grad
    torch.testing.assert_close(states["reversal"][1], f)
    # Only reversal ends at the dataset chunk when d = 0; forward ends at the policy's own sample.
    zero = Draws(draws.next_noise, draws.policy_noise, torch.zeros_like(draws.depth), draws.bc_noise, draws.bc_time)
    torch.testing.assert_close(losses.virtual_states(policy, batch, zero, "reversal")[0], a)
    torch.testing.assert_close(losses.virtual_states(policy, batch, zero, "interpolation")[0], a)
    torch.testing.assert_close(
        losses.virtual_states(policy, batch, zero, "forward")[0], policy.sample(batch.observations, x0, clip=False)
    )


@pytest.fixture(scope="module")
def fx():
    return load_fixture()


def fixture_draws(fx) -> Draws:
    """The reference's draws with real fresh noise in ``policy_noise`` (the fixture leaves it NaN)."""
    d = draws_from_fixture(fx)
    noise = torch.randn(d.next_noise.shape, generator=torch.Generator().manual_seed(7))
    return Draws(d.next_noise, noise, d.depth, d.bc_noise, d.bc_time)


@pytest.mark.parametrize("mode", losses.VIRTUAL_STATES)
def test_modes_differ_from_the_reference_update_only_in_x_f(fx, mode):
    m = module_from_fixture(fx)
    m.hparams.virtual_states = mode
    batch, draws = batch_from_fixture(fx), fixture_draws(fx)
    x_f, f = losses.virtual_states(m.policy, batch, draws, mode)
    np.testing.assert_allclose(f.numpy(), fx["out.f"], atol=3e-7)  # the reference's flow times
    if mode == "reversal":
        np.testing.assert_allclose(x_f.numpy(), fx["out.x_f"], atol=2e-6 * np.abs(fx["out.x_f"]).max())
    else:
        assert (x_f - torch.from_numpy(fx["out.x_f"])).abs().max() > 0.1  # other states ...
    critic_loss, _ = m.critic_loss(batch, draws)
    # ... regressed on the reference's own target, at the same f, with the same expectile loss.
    q = losses.critic_at(m.critic, batch.observations, x_f, f)
    y = torch.from_numpy(fx["out.td_target"])
    expected = losses.expectile_loss(y - q, float(fx["expectile"]), batch.valid)
    torch.testing.assert_close(critic_loss, expected, rtol=2e-6, atol=1e-7)
    if mode == "reversal":
        np.testing.assert_allclose(critic_loss.item(), fx["out.critic_loss"], rtol=2e-6)
    # The actor's loss does not read the critic's states at all.
    actor_loss, info = m.actor_loss(batch, draws)
    np.testing.assert_allclose(info["bc_loss"].item(), fx["out.bc_loss"], rtol=2e-6)
    np.testing.assert_allclose(info["q_term"].item(), fx["out.actor_loss"], rtol=2e-6)


def test_reversal_mode_reads_no_fresh_noise(fx):
    """The fixture's policy_noise is NaN: RQL's own update must not touch it."""
    m = module_from_fixture(fx)
    critic_loss, _ = m.critic_loss(batch_from_fixture(fx), draws_from_fixture(fx))
    assert torch.isfinite(critic_loss)
    np.testing.assert_allclose(critic_loss.item(), fx["out.critic_loss"], rtol=2e-6)


def test_an_unknown_mode_is_a_user_error():
    with pytest.raises(UserError, match=r"model.virtual_states=direct .*reversal, interpolation, forward"):
        RQLModule(obs_dim=2, action_dim=1, virtual_states="direct")
