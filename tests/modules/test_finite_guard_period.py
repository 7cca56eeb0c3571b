"""``model.check_finite_every=N``: the guard looks every N steps only (one host sync each). A non-finite update
between two checks is applied unseen, and the next check stops the run naming its step, as docs/algorithm.md (U4)
says; with N=1 the bad step itself is refused before it touches a weight."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from rql_lightning.errors import NonFiniteError
from rql_lightning.modules.rql import RQLModule
from tests.modules.two_mode import two_mode_sampler
from tests.runs import bare_trainer

KWARGS = dict(obs_dim=1, action_dim=1, chunk_size=1, flow_steps=4, num_critics=2)
KWARGS.update(actor_hidden_dims=[16, 16], critic_hidden_dims=[16, 16])
BAD_STEP = 1


def batches(n: int) -> list:
    sampler = two_mode_sampler()
    out = [sampler.sample(32, torch.Generator().manual_seed(k)) for k in range(n)]
    out[BAD_STEP].observations = torch.full_like(out[BAD_STEP].observations, float("nan"))
    return out


def weights_finite(module: RQLModule) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in module.parameters())


@pytest.mark.parametrize(("every", "stops_at", "finite"), [(1, BAD_STEP, True), (3, 3, False)])
def test_the_guard_checks_every_n_steps(every, stops_at, finite):
    torch.manual_seed(0)
    module = RQLModule(**KWARGS, check_finite_every=every)
    loader = DataLoader(batches(6), batch_size=None)
    with pytest.raises(NonFiniteError, match=rf"^step {stops_at}: non-finite"):
        bare_trainer(max_steps=6).fit(module, train_dataloaders=loader)
    assert weights_finite(module) is finite  # unseen between checks: the bad update was applied
