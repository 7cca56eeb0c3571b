"""``summary.json``: one small machine-readable record per run, for ``rql-results`` and notebooks.

What it holds (``<output_dir>/summary.json``)
    ``task`` (environment name, e.g. ``cube-double``), ``task_id``, ``seed``, ``model`` (the LightningModule's
    class name) and ``model_class`` (its import path), ``status`` (``running``, ``finished``, ``failed`` or
    ``interrupted``), ``step`` (``trainer.global_step``), ``success_rate`` / ``return`` / ``eval_step`` of the
    last evaluation (``null`` before the first one), ``curve`` (every evaluation:
    ``{"step", "success_rate", "return", "episodes"}``, with ``step`` in training batches as in the
    :class:`~rql_lightning.callbacks.evaluation.EvaluationCallback` and its ``eval/*`` logs; a resumed run
    includes the evaluations stored in its checkpoint), ``eval_env``, ``wall_time_s`` (this process, from fit
    start), ``started_at`` / ``updated_at`` (UTC, ISO 8601), ``git_commit`` and ``git_dirty`` (of the
    repository holding this source file, ``null`` when it is not a git checkout), and ``config``.

When it is written
    At fit start, after every evaluation, at train end and when training raises, so a crashed or killed run
    still leaves its partial curve. Only global rank 0 writes, and each write replaces the file atomically
    (temporary file in the same directory, then :func:`os.replace`): a reader never sees half a file.

Config
    ``config`` is the run's configuration as a plain dict. Pass it explicitly, or leave it ``None`` and the
    callback reads ``<output_dir>/.hydra/config.yaml``, which Hydra writes for every ``rql-train`` run
    (single runs and multirun jobs), resolved with ``paths.output_dir`` set to ``output_dir``. A run composed
    without Hydra's job machinery (``train(compose_config(...))``) has no such file: ``config`` is then
    ``null``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_warn

from rql_lightning.callbacks.evaluation import EvaluationCallback

__all__ = ["RunSummaryCallback", "git_state"]

SUMMARY_FILENAME = "summary.json"


def git_state(path: str | Path | None = None) -> tuple[str | None, bool | None]:
    """``(HEAD commit, has uncommitted changes to tracked files)`` of the git checkout holding ``path``.

    ``(None, None)`` when git is missing or ``path`` is not inside a checkout.
    """
    cwd = Path(path) if path is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
        if head.returncode != 0:
            return None, None
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip() or None, dirty


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _finite(x: Any) -> float | None:
    """A float for JSON, ``None`` for NaN/inf (which strict JSON cannot hold)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _load_hydra_config(output_dir: Path) -> dict[str, Any] | None:
    path = output_dir / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(path)
    # ``paths.output_dir`` is ``${hydra:runtime.output_dir}``, which only resolves inside a Hydra job.
    if "paths" in cfg and "output_dir" in cfg.paths:
        cfg.paths.output_dir = str(output_dir)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that needs Hydra's runtime: keep the config as written
        return OmegaConf.to_container(cfg, resolve=False)


class RunSummaryCallback(L.Callback):
    """Keep ``<output_dir>/summary.json`` up to date (see the module docstring for its fields).

    Args:
        output_dir: the run directory (``${paths.output_dir}``).
        task: environment name (``${task.name}``).
        task_id: single-task variant 1..5 (``${task.id}``).
        seed: the run's seed (``${seed}``).
        config: the run's configuration; ``None`` reads ``<output_dir>/.hydra/config.yaml`` when it exists.
        filename: name of the file written in ``output_dir``.
    """

    def __init__(
        self,
        output_dir: str | Path,
        task: str | None = None,
        task_id: int | None = None,
        seed: int | None = None,
        config: dict[str, Any] | None = None,
        filename: str = SUMMARY_FILENAME,
    ):
        super().__init__()
        self.output_dir = Path(output_dir).expanduser()
        self.path = self.output_dir / filename
        self.task = task
        self.task_id = None if task_id is None else int(task_id)
        self.seed = None if seed is None else int(seed)
        if config is not None and not isinstance(config, dict):  # a DictConfig from instantiate
            from omegaconf import OmegaConf

            config = OmegaConf.to_container(config, resolve=True)
        self.config = config
        self._start: float | None = None
        self._started_at: str | None = None
        self._git: tuple[str | None, bool | None] | None = None
        self._written_evals = -1

    # ------------------------------------------------------------------ hooks

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()
        self._started_at = _now()
        if not trainer.is_global_zero:
            return
        self._git = git_state()
        if self.config is None:
            try:
                self.config = _load_hydra_config(self.output_dir)
            except Exception as err:  # a broken file must not stop training
                rank_zero_warn(f"RunSummaryCallback: could not read {self.output_dir}/.hydra/config.yaml: {err}")
        self.write(trainer, pl_module, "running")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Cheap unless an evaluation has just finished (ours runs after the EvaluationCallback's hook when it
        # is listed after it, as in conf/callbacks/default.yaml; otherwise one batch later).
        if trainer.is_global_zero and self._num_evals(trainer) != self._written_evals:
            self.write(trainer, pl_module, "running")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.write(trainer, pl_module, "finished")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        self.write(trainer, pl_module, "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed")

    # ---------------------------------------------------------------- content

    @staticmethod
    def _eval_callback(trainer: L.Trainer) -> EvaluationCallback | None:
        for cb in trainer.callbacks:
            if isinstance(cb, EvaluationCallback):
                return cb
        return None

    def _num_evals(self, trainer: L.Trainer) -> int:
        cb = self._eval_callback(trainer)
        return len(cb.history) if cb is not None else 0

    @staticmethod
    def _curve(cb: EvaluationCallback) -> list[dict[str, Any]]:
        points: dict[int, dict[str, Any]] = {}
        for step, success, ret, episodes in cb.restored_history:  # from the checkpoint a run resumed from
            points[int(step)] = {"step": int(step), "success_rate": _finite(success), "return": _finite(ret)}
            points[int(step)]["episodes"] = int(episodes)
        for step, result in cb.history:
            points[int(step)] = {
                "step": int(step),
                "success_rate": _finite(result.success_rate),
                "return": _finite(result.mean_return),
                "episodes": int(result.num_episodes),
            }
        return [points[s] for s in sorted(points)]

    def summary(self, trainer: L.Trainer, pl_module: L.LightningModule, status: str) -> dict[str, Any]:
        """The record :meth:`write` stores (also usable on its own, e.g. in a notebook)."""
        cls = type(pl_module)
        cb = self._eval_callback(trainer)
        curve = self._curve(cb) if cb is not None else []
        last = curve[-1] if curve else {}
        git_commit, git_dirty = self._git or (None, None)
        return {
            "task": self.task,
            "task_id": self.task_id,
            "seed": self.seed,
            "model": cls.__name__,
            "model_class": f"{cls.__module__}.{cls.__qualname__}",
            "status": status,
            "step": int(trainer.global_step),
            "eval_step": last.get("step"),
            "success_rate": last.get("success_rate"),
            "return": last.get("return"),
            "eval_env": cb.env_name if cb is not None else None,
            "curve": curve,
            "wall_time_s": round(time.monotonic() - self._start, 3) if self._start is not None else None,
            "started_at": self._started_at,
            "updated_at": _now(),
            "git_commit": git_commit,
            "git_dirty": git_dirty,
            "output_dir": str(self.output_dir),
            "config": self.config,
        }

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule, status: str) -> None:
        """Atomically (re)write ``summary.json`` on global rank 0; a failure is a warning, never a crash."""
        if not trainer.is_global_zero:
            return
        self._written_evals = self._num_evals(trainer)
        try:
            text = json.dumps(self.summary(trainer, pl_module, status), indent=2, default=str)
            self.output_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.output_dir, prefix=f".{self.path.name}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(text + "\n")
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except Exception as err:
            rank_zero_warn(f"RunSummaryCallback: could not write {self.path}: {err}")
