"""Nothing lost: NaN guard, atomic checkpoints, preemption by a real signal, resume=auto."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rql_lightning.checkpointing import AtomicCheckpointIO
from rql_lightning.errors import NonFiniteError
from rql_lightning.modules.rql import RQLModule
from tests.test_learning import two_mode_sampler

RQL_TRAIN = str(Path(sys.executable).with_name("rql-train"))


def small(**kw) -> RQLModule:
    torch.manual_seed(0)
    return RQLModule(
        obs_dim=1,
        action_dim=1,
        chunk_size=1,
        flow_steps=4,
        num_critics=2,
        actor_hidden_dims=[16],
        critic_hidden_dims=[16],
        **kw,
    )


def poisoned_batch():
    batch = two_mode_sampler().sample(32, torch.Generator().manual_seed(0))
    batch.rewards[3, 0] = float("nan")
    return batch


def test_nonfinite_loss_stops_training_naming_step_and_term():
    m = small()
    opt = m.configure_optimizers()
    before = copy.deepcopy(m.state_dict())
    with pytest.raises(NonFiniteError, match=r"step 0: non-finite critic_loss.*critic gradient"):
        m.update(poisoned_batch(), m.draw(32), opt)
    for key, value in m.state_dict().items():  # the update was not applied
        assert torch.equal(value, before[key]), key


def test_skip_nonfinite_drops_the_update_and_counts_it():
    m = small(skip_nonfinite=True)
    opt = m.configure_optimizers()
    before = copy.deepcopy(m.state_dict())
    m.update(poisoned_batch(), m.draw(32), opt)
    assert int(m.skipped_updates) == 1
    for key, value in m.state_dict().items():
        if key != "skipped_updates":
            assert torch.equal(value, before[key]), key
    good = two_mode_sampler().sample(32, torch.Generator().manual_seed(1))
    m.update(good, m.draw(32), opt)
    assert not torch.equal(m.policy.velocity_net.weights[0], before["policy.velocity_net.weights.0"])
    assert all(torch.isfinite(p).all() for p in m.parameters())


def test_checkpoint_write_interrupted_midway_leaves_previous_checkpoint_intact(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(1000)}, path)

    def crash_midway(obj, f, *args, **kwargs):
        f.write(b"partial bytes of a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind
