"""``summary.json``: one small machine-readable record per run (fields: :meth:`RunSummaryCallback.summary`), for
``rql-results`` and notebooks. Rewritten at fit start, after every evaluation, at train end and when training raises
(a crashed run keeps its partial curve). A batched module (``seeds``, ``task.ids``) writes one per replica,
``<output_dir>/<replica key>/summary.json``, with the whole batch's ``seeds`` (and ``task_ids``)."""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections.abc import Mapping
from contextlib import suppress
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from omegaconf import OmegaConf

from rql_lightning.checkpointing import checkpoint_dir, last_good_line
from rql_lightning.envs import success_timing_of
from rql_lightning.evaluator import metric_key, replicas_of
from rql_lightning.file_writes import WriteRefusedError, write_atomically
from rql_lightning.naming import class_path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"alpha": 3}}`` -> ``{"model.alpha": 3}`` (HParams names); values that are not numbers,
    strings or booleans (lists, None) as strings."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, bool | int | float | str) else str(value)
    return flat


def _finite(x: Any) -> float | None:
    """A float for JSON, ``None`` for NaN/inf (which strict JSON cannot hold)."""
    return None if x is None or not math.isfinite(x := float(x)) else x


def method_name(module: Any) -> str:
    """The name tables use: the module's ``method_name`` (``model.name``, else its class's ``default_name``), else
    the class name (a LightningModule of the user's own)."""
    name = getattr(module, "method_name", None)
    return name if isinstance(name, str) and name else type(module).__name__


def git_state() -> tuple[str | None, bool | None]:
    """``(HEAD commit, has uncommitted changes to tracked files)`` of the checkout holding this code; ``(None, None)``
    when git is missing or the code is not inside a checkout (or before its first commit)."""
    command = ["git", "status", "--porcelain=v2", "--branch", "--untracked-files=no"]
    try:
        status = subprocess.run(
            command, cwd=Path(__file__).resolve().parent, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    lines = status.stdout.splitlines() if status.returncode == 0 else []
    head = next((line.split()[2] for line in lines if line.startswith("# branch.oid ")), "(initial)")
    return (None, None) if head == "(initial)" else (head, any(not line.startswith("#") for line in lines))


def load_hydra_config(output_dir: Path) -> dict[str, Any] | None:
    """``<output_dir>/.hydra/config.yaml`` as a plain dict, resolved with ``paths.output_dir = output_dir``;
    None when the file does not exist (a run composed without Hydra's job machinery)."""
    path = Path(output_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    cfg = OmegaConf.load(path)
    # ``paths.output_dir`` is ``${hydra:runtime.output_dir}``, which only resolves inside a Hydra job.
    if "paths" in cfg and "output_dir" in cfg.paths:
        cfg.paths.output_dir = str(output_dir)
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # an interpolation that needs Hydra's runtime: keep the config as written
        return OmegaConf.to_container(cfg, resolve=False)


class RunSummaryCallback(L.Callback):
    """Keep ``<output_dir>/summary.json`` up to date; the arguments are the config's ``paths.output_dir``,
    ``task.name``, ``task.id``, ``seed``, ``eval.success_timing`` and the config itself (None: read it)."""

    def __init__(
        self,
        output_dir: str | Path,
        task: str | None = None,
        task_id: int | None = None,
        seed: int | None = None,
        config: dict[str, Any] | None = None,
        success_timing: str | None = None,
    ):
        super().__init__()
        self.output_dir = Path(output_dir).expanduser()
        self.task = task
        self.task_id = None if task_id is None else int(task_id)
        self.seed = None if seed is None else int(seed)
        self.success_timing = success_timing
        self.config = config
        self._start: float | None = None
        self._started_at: str | None = None
        self._git: tuple[str | None, bool | None] | None = None
        self._data: dict[str, Any] | None = None
        self._data_read = False
        self._written_evals = -1

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = time.monotonic()
        self._started_at = _now()
        if not trainer.is_global_zero:
            return
        self._git = git_state()
        if self.config is None:
            try:
                self.config = load_hydra_config(self.output_dir)
            except Exception as err:  # a broken file must not stop training
                rank_zero_warn(f"RunSummaryCallback: could not read {self.output_dir}/.hydra/config.yaml: {err}")
        self.write(trainer, pl_module, "running")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # Cheap unless an evaluation has just finished (ours runs after the EvaluationCallback's hook when it
        # is listed after it, as in conf/callbacks/default.yaml; otherwise one batch later).
        if trainer.is_global_zero and self._num_evals(trainer) != self._written_evals:
            self.write(trainer, pl_module, "running")

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        records = self.write(trainer, pl_module, "finished")
        if records:
            self.log_hparams(trainer, pl_module, records)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        with suppress(WriteRefusedError):  # the run is already stopping for ``exception``: that is the one line to show
            self.write(trainer, pl_module, "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed")

    @staticmethod
    def _num_evals(trainer: Any) -> int:
        metrics = getattr(trainer, "callback_metrics", None) or {}
        return sum(len(v) for k, v in metrics.items() if k.endswith("eval/curve"))

    def summary(
        self, trainer: L.Trainer, pl_module: L.LightningModule, status: str, replica: str | None = None
    ) -> dict[str, Any]:
        """The record :meth:`write` stores; ``replica``: that replica's of a batched module (``task2/seed3``).
        ``config``: given, else ``<output_dir>/.hydra/config.yaml`` (``null`` without one)."""
        replicas = {key: (task, seed) for key, task, seed in replicas_of(pl_module) or []}
        task, seed = replicas[replica] if replica is not None else (None, None)
        node = ((self.config or {}).get("callbacks") or {}).get("evaluation") or {}
        env = node.get("env_name") or getattr(getattr(trainer, "datamodule", None), "eval_env_name", None)
        metrics = getattr(trainer, "callback_metrics", None) or {}  # a stand-in trainer may have none
        published = metrics.get(metric_key(replica or "", "eval/curve"))  # None: nothing evaluates the run
        curve = [
            {"step": int(s), "success_rate": _finite(sr), "return": _finite(ret), "episodes": int(n)}
            for s, sr, ret, n in ([] if published is None else published.tolist())
        ]
        identity = getattr(getattr(trainer, "datamodule", None), "identity", None)  # source, dataset, path, ...
        if not self._data_read and callable(identity):  # once per run: an identity may hash files
            self._data_read = True
            try:
                self._data = dict(identity())
            except Exception as err:  # noqa: BLE001  (a record must not stop training)
                rank_zero_warn(f"data identity unavailable: {type(err).__name__}: {err}")
        last = curve[-1] if curve else {}
        git_commit, git_dirty = self._git or (None, None)
        config = self.config if seed is None or self.config is None else {**self.config, "seed": seed}
        if config is not None and task is not None:  # that single run's config
            config = {**config, "task": {**config.get("task", {}), "id": task, "ids": None}}
        batch = {} if seed is None else {"seeds": [s for _, s in replicas.values()]}
        if task is not None:
            batch["task_ids"] = [t for t, _ in replicas.values()]
        return {
            "task": self.task,
            "task_id": self.task_id if task is None else task,
            "seed": self.seed if seed is None else seed,
            **batch,
            "model": method_name(pl_module),
            "model_class": class_path(type(pl_module)),  # one module class holds every replica
            "data": self._data,
            "status": status,
            "step": int(trainer.global_step),
            "offline_steps": int(metrics.get("online/offline_steps", trainer.global_step)),  # online: as published
            "online_env_steps": int(metrics.get("online/env_steps", 0)),
            "online_updates": int(metrics.get("online/online_updates", 0)),
            "eval_step": last.get("step"),
            "success_rate": last.get("success_rate"),
            "return": last.get("return"),
            "eval_env": None if published is None else env,
            "ogbench_version": version("ogbench"),  # its semantics changed between releases
            # runs under different semantics are never pooled
            "success_timing": success_timing_of(env, self.success_timing) if env else self.success_timing,
            "curve": curve,  # every evaluation, restored ones included, ``step`` in training batches
            "wall_time_s": round(time.monotonic() - self._start, 3) if self._start is not None else None,
            "started_at": self._started_at,
            "updated_at": _now(),
            "git_commit": git_commit,
            "git_dirty": git_dirty,
            "output_dir": str(self.output_dir),
            "config": config,
        }

    def write(self, trainer: L.Trainer, pl_module: L.LightningModule, status: str) -> dict[str | None, dict]:
        """Atomically (re)write the summary file(s) on global rank 0; the records written, by replica key. A refused
        write stops the run as one line (:class:`WriteRefusedError`); a record that cannot be made is a warning."""
        if not trainer.is_global_zero:
            return {}
        self._written_evals = self._num_evals(trainer)
        records = {}
        for replica in [key for key, _, _ in replicas_of(pl_module) or [(None, None, None)]]:
            path = self.output_dir / (replica or "") / "summary.json"  # one per replica
            try:
                record = self.summary(trainer, pl_module, status, replica)
                text = json.dumps(record, indent=2, default=str) + "\n"
            except Exception as err:
                rank_zero_warn(f"RunSummaryCallback: could not write {path}: {err}")
                continue
            write_atomically(
                path,
                lambda f, text=text: f.write(text.encode()),
                what="the run summary",
                state=lambda: last_good_line(checkpoint_dir(trainer)),
            )
            records[replica] = record
        return records

    @staticmethod
    def log_hparams(trainer: L.Trainer, pl_module: L.LightningModule, records: dict[str | None, dict]) -> None:
        """The config flattened to ``group.key`` names (plus ``run.method``, ``run.data``) and the final numbers
        (``final/*``, per replica ``<key>/final/*``: Lightning writes them as scalars at step 0, so their own tags)
        to TensorBoard's HParams view; a failure is a warning."""
        record = next(iter(records.values()))
        data = record["data"] or {}
        config = record["config"] or {"model": dict(getattr(pl_module, "hparams", {}))}
        params = {
            **flatten(config),
            "run.method": record["model"],
            "run.data": str(data.get("key", "")),
        }
        finals = ("success_rate", "return")
        metrics = {metric_key(key or "", f"final/{name}"): r[name] for key, r in records.items() for name in finals}
        metrics["final/step"] = record["step"]
        try:
            numbers = {k: float(v) for k, v in metrics.items() if _finite(v) is not None}
            for logger in getattr(trainer, "loggers", []):
                if isinstance(logger, TensorBoardLogger) and numbers:
                    logger.log_hyperparams(params, numbers)
        except WriteRefusedError:  # the event file refused it: the run's one line, not a warning
            raise
        except Exception as err:  # noqa: BLE001
            rank_zero_warn(f"RunSummaryCallback: hyperparameters not logged: {type(err).__name__}: {err}")
