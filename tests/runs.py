"""How tests run the commands: the tiny-run overrides every end-to-end test shares, and a real
``rql-train`` process with its output at hand."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

RQL_TRAIN = str(Path(sys.executable).with_name("rql-train"))
TRACEBACK = "Traceback (most recent call last)"
# Tiny networks and batches; evaluation only at the end of training (2 episodes, in-process env).
TINY = [
    "model.num_critics=2",
    "model.actor_hidden_dims=[32,32]",
    "model.critic_hidden_dims=[32,32]",
    "data.batch_size=32",
    "eval.episodes=2",
    "eval.num_envs=1",
    "eval.every_n_steps=1000",
    "callbacks.checkpoint.every_n_train_steps=10",
    "trainer.log_every_n_steps=5",
    "trainer.enable_progress_bar=false",
]


def quiet_env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)  # the default, short error reports are under test
    return env


def rql_train(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RQL_TRAIN, *args], cwd=cwd, env=quiet_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalar series of the TensorBoard event files under ``log_dir``: tag -> [(step, value)]."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def explain(proc: subprocess.CompletedProcess) -> str:
    return f"exit {proc.returncode}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"


def train_tiny(out: Path, overrides: list[str]) -> None:
    """One tiny in-process ``rql-train`` run (4 steps, a 1-episode evaluation of 20 steps) into ``out``,
    with the ``.hydra/config.yaml`` a Hydra job leaves there."""
    from omegaconf import OmegaConf

    from rql_lightning.config import compose_config
    from rql_lightning.training import train

    cfg = compose_config(
        [
            f"paths.output_dir={out}",
            *TINY,
            "trainer.max_steps=4",
            "callbacks.evaluation.num_episodes=1",
            "+callbacks.evaluation.env_kwargs.max_episode_steps=20",
            *overrides,
        ]
    )
    (out / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    train(cfg)


def bare_trainer(max_steps: int, devices: int = 1, callbacks: list | None = None, **kwargs):
    """A CPU Trainer that only trains: no logger, checkpoints, progress bar or model summary unless ``kwargs``
    set them. ``devices > 1`` is DDP over that many real gloo processes (``ddp_spawn``)."""
    import lightning as L

    settings = dict(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_spawn" if devices > 1 else "auto",
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks or [],
    )
    return L.Trainer(**{**settings, **kwargs})
