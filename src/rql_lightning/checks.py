"""Checks of what the user asked for, each rule in one place, before anything heavy starts: config, command line,
machine, run directory and checkpoint. Each failure is one :class:`~rql_lightning.errors.UserError` line
``<key>=<value> <what is wrong>; <what to do>``; docs/errors.md lists every case."""

from __future__ import annotations

import functools
import math
import os
import re
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from rql_lightning.errors import UserError

PRECISIONS = ("64-true", "64", "32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "16", "bf16")
PRECISIONS += (64, 32, 16)  # the integer spellings Lightning accepts
VIRTUAL_STATES = ("reversal", "interpolation", "forward")  # losses.virtual_states' modes
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
DATA_KEYS = ("obs_dim", "action_dim")
TOP_LEVEL_KEYS = ("seeds", "task_ids")  # settings of the run, not of model.*
_NET_KEYS = ("chunk_size", "flow_steps", "num_critics", "actor_hidden_dims", "critic_hidden_dims", "critic_layer_norm")
SHAPE_KEYS = DATA_KEYS + _NET_KEYS + TOP_LEVEL_KEYS  # a checkpoint only fits a run that agrees on all of them
MODULE_CLASS_KEY = "module_class"  # written into every checkpoint by FlowQModule.on_save_checkpoint
# An exported replica's origin (modules/seed_export.py): its run's env and protocol wherever the file lies.
EXPORTED_FROM = "exported_from"


@dataclass(frozen=True)
class Setting:
    """A setting's contract: a range (``open_*``: strict), or ``choices``; ``special`` values allowed besides."""

    key: str
    kind: type
    hint: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[Any, ...] | None = None
    special: tuple[Any, ...] = ()

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, or None."""
        if value in self.special or value in (self.choices or ()):
            return None
        if value is None:
            return "must be set"
        if self.choices is not None:
            return f"must be one of {', '.join(map(str, self.choices))}"
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return "must be a whole number"
        if self.kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
            return "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be finite"
        too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        if not (too_low or too_high):
            return None
        lo = "" if self.low is None else f"{'>' if self.open_low else '>='} {self.low:g}"
        hi = "" if self.high is None else f"{'<' if self.open_high else '<='} {self.high:g}"
        return f"must be {' and '.join(p for p in (lo, hi) if p)}"


# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("seed", int, "use a non-negative integer seed", low=0),
    Setting("task.id", int, "OGBench single-task environments have tasks 1 2 3 4 5", low=1, high=5),
    Setting("task.chunk_size", int, "the paper uses 5 (manipulation) or 1 (locomotion)", low=1),
    Setting("task.discount", float, "the paper uses 0.99 or 0.995", low=0.0, high=1.0, open_low=True),
    Setting("task.alpha", float, "the paper sweeps 0.1 0.3 1 3 10", low=0.0),
    Setting("task.expectile", float, "an expectile lies strictly between 0 and 1 (the paper: 0.5, 0.7, 0.9)",
            low=0.0, high=1.0, open_low=True, open_high=True),
    Setting("task.rho", float, "rho weighs the ensemble's std (the paper: 0 or 0.5)", low=0.0),
    Setting("task.fql.alpha", float, "FQL's published values are 10..1000 (model=fql reads it)", low=0.0),
    Setting("task.fql.q_agg", str, "mean (FQL's default) or min (clipped double Q)", choices=("mean", "min")),
    # model=fql sets its own expectile and rho (RQL's read task.expectile and task.rho)
    Setting("model.expectile", float, "an expectile lies strictly between 0 and 1 (FQL's plain MSE: 0.5)",
            low=0.0, high=1.0, open_low=True, open_high=True),
    Setting("model.rho", float, "rho weighs the ensemble's std (FQL: 0)", low=0.0),
    Setting("model.flow_steps", int, "the paper uses 10 Euler steps", low=1),
    Setting("model.num_critics", int, "the paper uses an ensemble of 10 (FQL: 2)", low=1),
    Setting("model.actor_lr", float, "the paper uses 3e-4", low=0.0, open_low=True),
    Setting("model.critic_lr", float, "the paper uses 3e-4", low=0.0, open_low=True),
    Setting("model.tau", float, "the paper uses 0.005", low=0.0, high=1.0, open_low=True),
    Setting("model.ema", float, "the paper uses 0.999 (0 copies the actor every step)", low=0.0, high=1.0,
            open_high=True),
    Setting("model.check_finite_every", int, "0 disables the NaN guard, n checks every n steps", low=0),
    Setting("model.normalize_q_loss", bool, "true or false"),
    Setting("model.compile", bool, "true or false"),
    Setting("model.compile_mode", str, "torch.compile's modes", choices=COMPILE_MODES),
    Setting("model.skip_nonfinite", bool, "true or false"),
    Setting("model.virtual_states", str, "reversal is RQL; the others are controls", choices=VIRTUAL_STATES),
    Setting("data.batch_size", int, "the paper uses 256", low=1),
    Setting("data.global_batch_size", int, "null, or a global batch divisible by the number of ranks", low=1,
            special=(None,)),
    Setting("data.generate_transitions", int, "the quickstart generates 200000", low=1),
    Setting("data.generate_workers", int, "one worker process per free core", low=1),
    Setting("data.action_tolerance", float, "the default is 0.001", low=0.0),
    Setting("data.shard_swap_interval", int, "the reference swaps every 1000 steps", low=1),
    Setting("data.shards_in_memory", int, "hold at least one shard", low=1),
    Setting("data.shard_stall", str, "wait (exact schedule) or continue", choices=("wait", "continue")),
    Setting("data.data_kind", str, "standard or 100m_shards", choices=("standard", "100m_shards")),
    Setting("trainer.max_steps", int, "a positive number of steps (or -1 for no limit)", low=1, special=(-1,)),
    Setting("trainer.log_every_n_steps", int, "log every n >= 1 steps", low=1),
    Setting("trainer.num_nodes", int, "at least one node", low=1),
    Setting("trainer.accelerator", str, "cpu, gpu or auto", choices=("auto", "cpu", "gpu", "cuda", "mps")),
    Setting("trainer.precision", str, "32-true is the paper's; bf16-mixed on recent GPUs", choices=PRECISIONS),
    Setting("eval.episodes", int, "0 disables evaluation; the paper uses 50", low=0),
    Setting("eval.every_n_steps", int, "0 evaluates only at the end; the paper: every 100000", low=0),
    Setting("eval.num_envs", int, "at least one env per rank", low=1),
    Setting("eval.video_episodes", int, "0 records no video", low=0),
    Setting("eval.success_timing", str, "pre (OGBench 1.2), post (OGBench 1.1) or null (the installed OGBench's)",
            choices=(None, "pre", "post")),
    Setting("callbacks.checkpoint.every_n_train_steps", int, "0 saves only at the end", low=0),
    Setting("online.steps", int, "0 is an offline run; the release fine-tunes for 1000000 env steps", low=0),
    Setting("online.utd", int, "updates per environment step (the release: 1)", low=1),
    Setting("callbacks.diagnostics.diag_every", int, "0 turns the diagnostics off", low=0),
    Setting("callbacks.checkpoint.save_top_k", int, "-1 keeps every checkpoint, k the newest k", low=-1),
)
# fmt: on


_ABSENT = object()


def _select(cfg: Any, key: str, default: Any = None) -> Any:
    value = OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


_ALIAS = re.compile(r"\$\{([\w.]+)\}")  # a value that only reads another key: ${task.alpha}


def _alias_of(cfg: Any, key: str) -> str | None:
    """The key that ``key``'s raw value only reads (``${task.alpha}``), or None."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    raw = node._get_node(leaf)._value() if OmegaConf.is_dict(node) and leaf in node else None
    match = _ALIAS.fullmatch(raw) if isinstance(raw, str) else None
    return match.group(1) if match else None


def _distinct(values: Any, bad) -> bool:
    """A non-empty list of distinct values, none of them ``bad``."""
    return isinstance(values, list) and len(set(map(str, values))) == len(values) > 0 and not any(map(bad, values))


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(map(_show, value)) + "]"
    return str(value)


class OversubscribedWarning(UserWarning):
    """More DDP processes than CPU cores: allowed (the result is the same), only slower."""


def check_config(cfg: Any) -> None:
    """Every setting within its contract (:data:`SETTINGS`), then the rules between settings (config only)."""
    for setting in SETTINGS:
        value = _select(cfg, setting.key, _ABSENT)
        problem = None if value is _ABSENT else setting.problem(value)
        if problem:
            key = setting.key
            for _ in range(10):  # the key the user set: model.expectile reads ${task.expectile}
                key = _alias_of(cfg, key) or key
            raise UserError(f"{key}={_show(value)} {problem}; {setting.hint}")
    for key in ("model.actor_hidden_dims", "model.critic_hidden_dims"):
        dims = _select(cfg, key, _ABSENT)
        bad = not isinstance(dims, list) or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims)
        if dims is not _ABSENT and bad:
            raise UserError(f"{key}={_show(dims)} must be a list of positive layer widths; e.g. {key}=[512,512]")
    seeds = _select(cfg, "seeds")
    if seeds is not None and not _distinct(seeds, next(s for s in SETTINGS if s.key == "seed").problem):
        raise UserError(
            f"seeds={_show(seeds)} must be a non-empty list of distinct non-negative integers; "
            "e.g. seeds=[0,1,2,3], or seeds=null for the single run of seed="
        )
    timing = _select(cfg, "eval.success_timing")
    if timing is not None and str(_select(cfg, "data._target_")).endswith("MinariDataModule"):
        raise UserError(f"eval.success_timing={timing} is OGBench's switch; a Minari env has none: drop it")
    steps = (cfg.get("online") or {}).get("steps", 0)
    task_ids = _select(cfg, "task.ids")
    if task_ids is not None:
        (task_id,) = [s for s in SETTINGS if s.key == "task.id"]
        if not _distinct(task_ids, task_id.problem):
            raise UserError(
                f"task.ids={_show(task_ids)} must be a non-empty list of distinct task ids, each {int(task_id.low)}.."
                f"{int(task_id.high)}; e.g. task.ids=[1,2,3,4,5], or task.ids=null for the one task.id"
            )
        if steps:
            raise UserError(
                f"task.ids={_show(task_ids)} with online.steps={steps}: a multi-task run is offline only (the "
                "online phase steps one environment); fine-tune one run per task (rql-train -m task.id=1,2 "
                "online.steps=...), or drop online.steps"
            )
        if "task_ids" not in (cfg.get("data") or {}):
            raise UserError(
                f"task.ids={_show(task_ids)} with data={cfg.data.get('_target_')}: that data source reads one "
                "task; several tasks need data=ogbench (one file, a reward column per task), or task.ids=null"
            )
    if steps and seeds:
        raise UserError(
            f"seeds={_show(seeds)} with online.steps={steps}: a seed-batched run is offline only; fine-tune one "
            "run per seed (rql-train -m seed=0,1,2 online.steps=...), or drop online.steps"
        )
    if steps and cfg.trainer.get("max_steps", -1) < 0:
        raise UserError(
            f"trainer.max_steps={cfg.trainer.max_steps} must be >= 0 with online.steps={steps}; it counts the "
            "offline updates"
        )


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuse a command-line value for a key that only reads another (``model.alpha: ${task.alpha}``): the two
    would disagree. Which keys read others is what the configs say under the command line's group choices."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parsed = OverridesParser.create().parse_overrides(list(overrides))
    values = [o for o in parsed if not (o.is_delete() or o.is_add()) and "." in o.key_or_group]
    values = [o for o in values if not o.key_or_group.startswith("hydra.")]
    if not values:
        return
    base = _compose_cached(tuple(o.input_line for o in parsed if o not in values))  # the configs' own values
    for override in values:
        alias = _alias_of(base, override.key_or_group)  # None for a key the config lacks: Hydra reports it
        if alias:
            value = override.value()
            raise UserError(
                f"{override.key_or_group}={_show(value)} sets apart a value the config reads from {alias}; "
                f"set {alias}={_show(value)} instead"
            )


@functools.lru_cache(maxsize=8)
def _compose_cached(overrides: tuple[str, ...]) -> Any:
    """A sweep's jobs share their group choices: compose each set of them once."""
    from rql_lightning.config import compose_config

    return compose_config(list(overrides))


def check_machine(cfg: Any) -> None:
    """Devices, precision and ``data.device`` this machine and torch build can serve; run where the job runs."""
    import torch

    accelerator, devices = cfg.trainer.get("accelerator", "auto"), cfg.trainer.get("devices", 1)
    gpus = torch.cuda.device_count()
    on_gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and gpus > 0)
    if isinstance(devices, int) and devices != -1:  # "auto", lists of ids and -1 are resolved by Lightning
        if devices < 1:
            raise UserError(f"trainer.devices={devices} must be >= 1")
        if accelerator in ("gpu", "cuda") and gpus == 0:
            raise UserError("trainer.accelerator=gpu but no GPU is visible; use trainer.accelerator=cpu")
        if on_gpu and devices > gpus:
            raise UserError(f"trainer.devices={devices} but only {gpus} GPU(s) are visible; use trainer.devices={gpus}")
        cores = os.cpu_count() or 1
        if not on_gpu and devices > cores:
            warnings.warn(
                f"trainer.devices={devices} CPU processes on {cores} cores: oversubscribed, so each rank runs slower; "
                "it still trains correctly (use trainer.devices<=%d for speed)" % cores,
                OversubscribedWarning,
                stacklevel=2,
            )
    device = str(cfg.data.get("device", "cpu"))  # where windows are sampled
    if device.startswith("cuda") and torch.version.cuda is None:
        raise UserError(
            f"data.device={device} but this torch build has no CUDA (torch {torch.__version__}); "
            "use data.device=cpu, or install a CUDA build (make install TORCH_SPEC=torch)"
        )
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"data.device={device} but no GPU is visible; use data.device=cpu")
    # fp16 needs a GPU (Lightning would silently switch a CPU run to bf16); bf16 needs one that has it
    name = str(cfg.trainer.get("precision", "32-true"))
    if not on_gpu and name.startswith("16"):
        raise UserError(
            f"trainer.precision={name} is not supported on CPU; use trainer.precision=bf16-mixed or 32-true"
        )
    if on_gpu and name.startswith("bf16") and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise UserError(f"trainer.precision={name} needs a GPU with bfloat16 (Ampere or newer); use 32-true")


def check_output_dir(path: str | Path) -> None:
    """The run directory must be writable before hours of training produce something to save."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=path).close()  # a file that vanishes on close
    except OSError as err:
        raise UserError(
            f"cannot write to the output directory {path} ({err.strerror}); choose another with hydra.run.dir=..."
        ) from None


def check_run_dir_arguments(argv: list[str]) -> None:
    """Before Hydra starts (it would report a traceback): the run/sweep directory given, or ``.``, is creatable."""
    targets = [a.split("=", 1)[1] for a in argv if a.startswith(("hydra.run.dir=", "hydra.sweep.dir="))]
    for target in targets or ["."]:
        if "${" in target:
            continue  # resolved by Hydra; checked again inside the run
        path = Path(target).expanduser().absolute()
        existing = next((p for p in (path, *path.parents) if p.exists()), None)
        if existing is None or not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
            raise UserError(
                f"cannot create the output directory {path}: {existing} is not a writable directory; "
                "choose another with hydra.run.dir=... (or hydra.sweep.dir=... for -m)"
            )


def read_checkpoint(
    ckpt_path: str | Path, run_hparams: dict[str, Any] | None = None, module_class: str | None = None
) -> dict[str, Any]:
    """A Lightning checkpoint from disk (memory-mapped) that fits ``run_hparams`` if given, or a one-line UserError."""
    import torch

    path = Path(ckpt_path).expanduser()
    if not path.is_file():
        raise UserError(f"ckpt_path={ckpt_path} does not exist; point it at a .ckpt (e.g. <run>/checkpoints/last.ckpt)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception as err:  # noqa: BLE001 (any unpickling failure means the same thing here)
        raise UserError(
            f"ckpt_path={ckpt_path} is not a readable checkpoint ({type(err).__name__}); it may be truncated"
        ) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "global_step" not in ckpt:
        raise UserError(f"ckpt_path={ckpt_path} is not a Lightning checkpoint of rql-train; point it at a .ckpt")
    problem = None if run_hparams is None else fit_problem(ckpt, run_hparams, module_class)
    if problem:
        raise UserError(f"ckpt_path={ckpt_path} {problem}")
    return ckpt


def fit_problem(checkpoint: dict[str, Any], run_hparams: dict[str, Any], module_class: str | None) -> str | None:
    """What keeps ``checkpoint`` from fitting a run with ``run_hparams`` (one line), or None. Also run by
    :meth:`FlowQModule.on_load_checkpoint` on what Lightning resolves (``resume=auto``) before any weight loads."""
    saved = checkpoint.get("hyper_parameters") or {}
    saved_class = checkpoint.get(MODULE_CLASS_KEY)
    if module_class and saved_class and saved_class != module_class:
        return (
            f"was written by {saved_class}, this run builds {module_class}; resume with the model it was trained "
            "with (its run's .hydra/config.yaml names it), or drop ckpt_path to start a new run"
        )
    if not saved_class:  # older checkpoints: hyperparameters of another method mean another class
        foreign = sorted((set(saved) ^ set(run_hparams)) - {"name"})  # name: a label, free to change
        if foreign:
            return (
                f"was written by another model class (hyperparameters {', '.join(foreign)} differ); resume with "
                "the model it was trained with, or drop ckpt_path to start a new run"
            )
    # a single run's hyperparameters have no seeds (no replica axis): absent is None
    both = [k for k in SHAPE_KEYS if (k in saved and k in run_hparams) or k in TOP_LEVEL_KEYS]
    differ = [k for k in both if _plain(saved.get(k)) != _plain(run_hparams.get(k))]
    if not differ:
        return None
    where = "; ".join(
        f"{_config_key(k)}={_plain(saved.get(k))} in the checkpoint, {_plain(run_hparams.get(k))} here" for k in differ
    )
    if saved.get("seeds") and not run_hparams.get("seeds"):
        task = " --task <task id>" if saved.get("task_ids") else ""
        where += f" (one replica of it: python -m rql_lightning.modules.seed_export <ckpt> <seed> <out.ckpt>{task})"
    data_hint = " (obs/action dims come from the data: another task or dataset)" if set(differ) & set(DATA_KEYS) else ""
    return (
        f"does not fit this run: {where}{data_hint}; resume with the checkpoint's settings (its run's "
        ".hydra/config.yaml lists them), or drop ckpt_path to start a new run"
    )


def _config_key(hparam: str) -> str:
    if hparam == "task_ids":
        return "task.ids (the replicas' tasks)"
    return hparam if hparam in DATA_KEYS + TOP_LEVEL_KEYS else f"model.{hparam}"


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple | list) else value
