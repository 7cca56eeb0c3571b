"""How tests run the commands: the tiny-run overrides every end-to-end test shares, a real ``rql-train``
process with its output at hand (where the process is the contract: exit codes of the console script,
signals, DDP), and the same command run in this process (everywhere else: no second torch import)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import signal
import subprocess
import sys
import warnings
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

RQL_TRAIN = str(Path(sys.executable).with_name("rql-train"))
TRACEBACK = "Traceback (most recent call last)"
# Evaluation episodes of 20 steps (the env's own limit is 200): no test reads what a longer episode would add.
SHORT_EPISODES = "++callbacks.evaluation.env_kwargs.max_episode_steps=20"
# Tiny networks and batches; evaluation only at the end of training (2 episodes of 20 steps, in-process env).
TINY = [
    "model.num_critics=2",
    "model.actor_hidden_dims=[32,32]",
    "model.critic_hidden_dims=[32,32]",
    "data.batch_size=32",
    "eval.episodes=2",
    "eval.num_envs=1",
    "eval.every_n_steps=1000",
    SHORT_EPISODES,
    "callbacks.checkpoint.every_n_train_steps=10",
    "trainer.log_every_n_steps=5",
    "trainer.enable_progress_bar=false",
]
# TINY for a run without the evaluation callback (``~callbacks.evaluation``)
TINY_NO_EVAL = [o for o in TINY if "callbacks.evaluation" not in o]


def quiet_env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)  # the default, short error reports are under test
    return env


def rql_train(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RQL_TRAIN, *args], cwd=cwd, env=quiet_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


class _Capture(io.StringIO):
    """A captured stream that stays readable whatever the run closes."""

    def close(self) -> None:
        pass


def rql_train_here(args: list[str], cwd: Path, command: str = "rql-train") -> subprocess.CompletedProcess:
    """``rql-train *args`` (or ``rql-eval``) run in this process, with ``cwd`` as working directory: its exit code
    (0, or the code of the ``SystemExit`` it ended with) and what it printed, as :func:`rql_train` returns them.

    Only Python-level output is captured (``sys.stdout``/``sys.stderr`` and the log handlers that write to
    them), and pytest records warnings itself: a claim about the real process's streams needs :func:`rql_train`.
    What Hydra, Lightning and the run leave in this process (Hydra's singletons, the handlers its logging
    config attaches, signal handlers, warning filters, the float32 matmul precision, the environment, the
    working directory) is put back as it was."""
    import torch
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    from rql_lightning.cli.eval import main as eval_main
    from rql_lightning.cli.train import train_main

    main = {"rql-train": train_main, "rql-eval": eval_main}[command]

    out, err = _Capture(), _Capture()
    loggers = [logging.root, *(v for v in logging.Logger.manager.loggerDict.values() if isinstance(v, logging.Logger))]
    saved_loggers = [(lg, lg.level, lg.disabled, lg.propagate, list(lg.handlers)) for lg in loggers]
    # Every handler bound to this process's streams (Lightning's, made at import; absl's, inside its own handler)
    # writes into the capture meanwhile. Hydra's logging config closes all handlers, and absl's closes its stream
    # unless it is the current sys.stderr: pointed at the capture, it leaves pytest's stream open. A handler left
    # on a closed stream (made under an earlier test's capsys) writes here too, as it would to a process's stderr.
    streams = {id(sys.stdout): out, id(sys.stderr): err, id(sys.__stdout__): out, id(sys.__stderr__): err}
    handlers = [ref() for ref in list(logging._handlerList)]  # noqa: SLF001 (all handlers, attached or not)
    retargeted = [
        (h, h.stream)
        for h in handlers
        if isinstance(h, logging.StreamHandler)
        and not isinstance(getattr(type(h), "stream", None), property)  # pytest's follow its own capture
        and (id(h.stream) in streams or getattr(h.stream, "closed", False))
    ]
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    saved_precision = torch.get_float32_matmul_precision()
    code = 0
    try:
        for handler, stream in retargeted:
            handler.stream = streams.get(id(stream), err)  # not setStream: it flushes, a closed stream too
        os.environ.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        os.environ.pop("HYDRA_FULL_ERROR", None)  # the default, short error reports are under test
        os.chdir(cwd)
        sys.argv = [command, *args]
        with warnings.catch_warnings(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        torch.set_float32_matmul_precision(saved_precision)
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        for lg, level, disabled, propagate, kept in saved_loggers:
            for handler in lg.handlers:
                if handler not in kept:  # Hydra's: the run's .log file and its console handler
                    handler.close()
            lg.handlers[:] = kept
            lg.setLevel(level)
            lg.disabled, lg.propagate = disabled, propagate
        for handler, stream in retargeted:
            handler.stream = stream
        for s, handler in saved_signals.items():
            if handler is not None and signal.getsignal(s) is not handler:
                signal.signal(s, handler)
    return subprocess.CompletedProcess([command, *args], code, out.getvalue(), err.getvalue())


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
            *overrides,
        ]
    )
    (out / ".hydra").mkdir(parents=True)
    OmegaConf.save(cfg, out / ".hydra" / "config.yaml")
    train(cfg)


def bare_trainer(max_steps: int, devices: int = 1, callbacks: list | None = None, **kwargs):
    """A CPU Trainer that only trains: no logger, checkpoints, progress bar or model summary unless ``kwargs``
    set them. ``devices > 1`` is DDP over that many real gloo processes, forked from this one (``ddp_fork``: no
    second import of torch and Lightning per rank; the pickling ``ddp_spawn`` needs is test_data_shards.py's)."""
    import lightning as L

    settings = dict(
        accelerator="cpu",
        devices=devices,
        strategy="ddp_fork" if devices > 1 else "auto",
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks or [],
    )
    return L.Trainer(**{**settings, **kwargs})
