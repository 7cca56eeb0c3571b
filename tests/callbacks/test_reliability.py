"""Nothing lost: NaN guard, atomic checkpoints, preemption by a real signal, resume=auto."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from rql_lightning.checkpointing import AtomicCheckpointIO
from rql_lightning.errors import NonFiniteError
from rql_lightning.file_writes import WriteRefusedError
from rql_lightning.modules.rql import RQLModule
from tests.modules.two_mode import two_mode_sampler
from tests.reliability.test_run_lock import wait_for
from tests.runs import explain, rql_train_here

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
    # docs/errors.md row 65
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
    with pytest.raises(WriteRefusedError, match="disk full"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(1000)}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left behind


def start_training(args: list[str], cwd: Path, run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [RQL_TRAIN, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def saved_step(run_dir: Path) -> int:
    """The step of ``<run>/checkpoints/last.ckpt``, 0 while there is none (it is replaced atomically: whole or old)."""
    path = run_dir / "checkpoints" / "last.ckpt"
    return torch.load(path, weights_only=True)["global_step"] if path.exists() else 0


def signal_when_training(proc: subprocess.Popen, run_dir: Path, signum: int, after_step: int = 0) -> str:
    """Signal the run once it has checkpointed past ``after_step`` (its periodic checkpoints, every 5 steps)."""
    wait_for(lambda: saved_step(run_dir) > after_step, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-2000:]}\n{err[-3000:]}"
    return out + err


class SignalAt(L.Callback):
    """Sends ``signum`` to this process once, after the update that reaches global step ``step``."""

    def __init__(self, step: int, signum: int) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def last_step(run_dir: Path) -> int:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]


def preemptible_run(dataset: Path, run_dir: Path) -> list[str]:
    """Tiny ``rql-train`` overrides for a run in ``run_dir`` that checkpoints every 5 steps (what a test waits for
    before it signals) and at a signal, and resumes with ``resume=auto``."""
    return [
        f"data.dataset_path={dataset}",
        f"hydra.run.dir={run_dir}",
        "~callbacks.evaluation",
        "model.num_critics=2",
        "model.actor_hidden_dims=[16]",
        "model.critic_hidden_dims=[16]",
        "data.batch_size=16",
        "callbacks.checkpoint.every_n_train_steps=5",
        "trainer.enable_progress_bar=false",
        "resume=auto",
    ]


@pytest.mark.slow
def test_preemption_signals_save_a_checkpoint_and_resume_auto_continues(cube_single_dataset, tmp_path):
    run_dir = tmp_path / "run"
    common = preemptible_run(cube_single_dataset, run_dir)
    # SIGTERM mid-run: a checkpoint at the step reached, clean exit.
    log = signal_when_training(
        start_training([*common, "trainer.max_steps=1000000"], tmp_path, run_dir), run_dir, signal.SIGTERM
    )
    first = last_step(run_dir)
    assert first >= 5 and f"preempted at step {first}: saved " in log, log
    # resume=auto picks it up; SIGUSR1 (cluster "time is almost up") does the same: sent to this process by the run
    # itself three steps after the resume (the exit code and streams of a signalled process are SIGTERM's above).
    usr1 = [
        "+callbacks.usr1._target_=tests.callbacks.test_reliability.SignalAt",
        f"+callbacks.usr1.step={first + 3}",
        f"+callbacks.usr1.signum={int(signal.SIGUSR1)}",
    ]
    stopped = rql_train_here([*common, "trainer.max_steps=1000000", *usr1], tmp_path)
    second = last_step(run_dir)
    assert stopped.returncode == 0, explain(stopped)
    assert second > first and f"preempted at step {second}: saved " in stopped.stdout + stopped.stderr, explain(stopped)
    # and a final resume runs to the end (in this process: only the SIGTERM'd run needs a process of its own).
    done = rql_train_here([*common, f"trainer.max_steps={second + 5}"], tmp_path)
    assert done.returncode == 0, explain(done)
    assert last_step(run_dir) == second + 5


def test_only_the_newest_checkpoints_are_kept_plus_last(cube_single_dataset, tmp_path):
    from rql_lightning.config import compose_config
    from rql_lightning.training import train

    overrides = [
        f"data.dataset_path={cube_single_dataset}",
        f"paths.output_dir={tmp_path}",
        "trainer.max_steps=6",
        "trainer.enable_progress_bar=false",
        "callbacks.checkpoint.every_n_train_steps=1",
        "~callbacks.evaluation",
        "model.num_critics=2",
        "model.actor_hidden_dims=[16]",
        "model.critic_hidden_dims=[16]",
        "data.batch_size=16",
    ]
    train(compose_config(overrides))
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt"))
    assert names == ["last.ckpt", "step0000004.ckpt", "step0000005.ckpt", "step0000006.ckpt"]
