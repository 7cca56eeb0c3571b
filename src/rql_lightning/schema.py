"""One declared table of every user-facing numeric and choice setting: type, range, and the fix.

:func:`validate` walks the table over a composed config before anything heavy starts; every violation
is one :class:`~rql_lightning.errors.UserError` ``<key>=<value> <what is wrong>; <what to do>``. A key
absent from the config (``model.expectile`` under ``model=bc``) is skipped. A value that came through an
interpolation (``model.expectile: ${task.expectile}``) is reported at the key the user set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rql_lightning.errors import UserError

PRECISIONS = ("64-true", "64", "32-true", "32", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "16", "bf16")
PRECISIONS += (64, 32, 16)  # the integer spellings Lightning accepts
ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps")
VIRTUAL_STATES = ("reversal", "interpolation", "forward")  # losses.VIRTUAL_STATES (a test keeps them equal)
COMPILE_MODES = (None, "default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


@dataclass(frozen=True)
class Setting:
    """A setting's contract. ``low``/``high`` bound numbers (``open_low``/``open_high``: strictly);
    ``choices`` lists allowed values; ``special`` values are allowed besides the range (e.g. -1)."""

    key: str
    kind: type
    hint: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[Any, ...] | None = None
    special: tuple[Any, ...] = ()
    nullable: bool = False

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value``, or None."""
        if value is None:
            return None if self.nullable or (self.choices and None in self.choices) else "must be set"
        if value in self.special:
            return None
        if self.choices is not None:
            return None if value in self.choices else f"must be one of {', '.join(map(str, self.choices))}"
        if self.kind is bool:
            return None if isinstance(value, bool) else "must be true or false"
        if self.kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            return "must be a whole number"
        if self.kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
            return "must be a number"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be finite"
        return self._range_problem(value)

    def _range_problem(self, value: float) -> str | None:
        too_low = self.low is not None and (value <= self.low if self.open_low else value < self.low)
        too_high = self.high is not None and (value >= self.high if self.open_high else value > self.high)
        if not (too_low or too_high):
            return None
        lo = "" if self.low is None else f"{'>' if self.open_low else '>='} {self.low:g}"
        hi = "" if self.high is None else f"{'<' if self.open_high else '<='} {self.high:g}"
        return f"must be {' and '.join(p for p in (lo, hi) if p)}"

    def out_of_range(self) -> Any:
        """A value this setting refuses (for the property test over the table)."""
        if self.choices is not None:
            return "not-a-choice"
        if self.kind is bool:
            return 3
        if self.low is not None:
            return self.low if self.open_low else self.low - 1
        return self.high if self.open_high else self.high + 1


def _unit(key: str, hint: str, **kw: Any) -> Setting:
    return Setting(key, float, hint, low=0.0, high=1.0, **kw)


# fmt: off
SETTINGS: tuple[Setting, ...] = (
    Setting("seed", int, "use a non-negative integer seed", low=0),
    Setting("task.id", int, "OGBench single-task environments have tasks 1 2 3 4 5", low=1, high=5),
    Setting("task.chunk_size", int, "the paper uses 5 (manipulation) or 1 (locomotion)", low=1),
    _unit("task.discount", "the paper uses 0.99 or 0.995", open_low=True),
    Setting("task.alpha", float, "the paper sweeps 0.1 0.3 1 3 10", low=0.0),
    _unit("task.expectile", "an expectile lies strictly between 0 and 1 (the paper: 0.5, 0.7, 0.9)",
          open_low=True, open_high=True),
    Setting("task.rho", float, "rho weighs the ensemble's std (the paper: 0 or 0.5)", low=0.0),
    Setting("model.chunk_size", int, "the paper uses 5 (manipulation) or 1 (locomotion)", low=1),
    _unit("model.discount", "the paper uses 0.99 or 0.995", open_low=True),
    Setting("model.alpha", float, "a non-negative weight (RQL: 0.1..10, FQL: 10..1000)", low=0.0),
    _unit("model.expectile", "an expectile lies strictly between 0 and 1 (the paper: 0.5, 0.7, 0.9)",
          open_low=True, open_high=True),
    Setting("model.rho", float, "rho weighs the ensemble's std (the paper: 0 or 0.5)", low=0.0),
    Setting("model.flow_steps", int, "the paper uses 10 Euler steps", low=1),
    Setting("model.num_critics", int, "the paper uses an ensemble of 10 (FQL: 2)", low=1),
    Setting("model.actor_lr", float, "the paper uses 3e-4", low=0.0, open_low=True),
    Setting("model.critic_lr", float, "the paper uses 3e-4", low=0.0, open_low=True),
    _unit("model.tau", "the paper uses 0.005", open_low=True),
    _unit("model.ema", "the paper uses 0.999 (0 copies the actor every step)", open_high=True),
    Setting("model.log_every", int, "log every n >= 1 steps", low=1),
    Setting("model.check_finite_every", int, "0 disables the NaN guard, n checks every n steps", low=0),
    Setting("model.q_agg", str, "mean (FQL's default) or min (clipped double Q)", choices=("mean", "min")),
    Setting("model.normalize_q_loss", bool, "true or false"),
    Setting("model.compile", bool, "true or false"),
    Setting("model.compile_mode", str, "torch.compile's modes", choices=COMPILE_MODES),
    Setting("model.skip_nonfinite", bool, "true or false"),
    Setting("model.virtual_states", str, "reversal is RQL; the others are controls", choices=VIRTUAL_STATES),
    Setting("data.batch_size", int, "the paper uses 256", low=1),
    Setting("data.global_batch_size", int, "null, or a global batch divisible by the number of ranks", low=1,
            nullable=True),
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
    Setting("trainer.accelerator", str, "cpu, gpu or auto", choices=ACCELERATORS),
    Setting("trainer.precision", str, "32-true is the paper's; bf16-mixed on recent GPUs", choices=PRECISIONS),
    Setting("eval.episodes", int, "0 disables evaluation; the paper uses 50", low=0),
    Setting("eval.every_n_steps", int, "0 evaluates only at the end; the paper: every 100000", low=0),
    Setting("eval.num_envs", int, "at least one env per rank", low=1),
    Setting("eval.video_episodes", int, "0 records no video", low=0),
    Setting("callbacks.checkpoint.every_n_train_steps", int, "0 saves only at the end", low=0),
    Setting("online.steps", int, "0 is an offline run; the release fine-tunes for 1000000 env steps", low=0),
    Setting("online.utd", int, "updates per environment step (the release: 1)", low=1),
    Setting("callbacks.diagnostics.diag_every", int, "0 turns the diagnostics off", low=0),
    Setting("callbacks.checkpoint.save_top_k", int, "-1 keeps every checkpoint, k the newest k", low=-1),
)
# fmt: on


def _select(cfg: Any, key: str) -> tuple[bool, Any]:
    from omegaconf import OmegaConf

    missing = object()
    value = OmegaConf.select(cfg, key, default=missing, throw_on_missing=False)
    if value is missing:
        return False, None
    if OmegaConf.is_config(value):
        value = OmegaConf.to_container(value, resolve=True)
    return True, value


def source_key(cfg: Any, key: str) -> str:
    """The key a value was set at: ``model.log_every`` is ``${trainer.log_every_n_steps}``, so a bad value
    there is reported as ``trainer.log_every_n_steps`` (what the user typed)."""
    import re

    from omegaconf import OmegaConf

    for _ in range(10):  # follow a chain of plain interpolations
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent) if parent else cfg
        raw = node._get_node(leaf)._value() if OmegaConf.is_dict(node) and leaf in node else None
        match = re.fullmatch(r"\$\{([\w.]+)\}", raw) if isinstance(raw, str) else None
        if not match:
            return key
        key = match.group(1)
    return key


def validate(cfg: Any) -> None:
    """Raise a one-line :class:`UserError` for the first setting outside its contract."""
    for setting in SETTINGS:
        present, value = _select(cfg, setting.key)
        if not present:
            continue
        problem = setting.problem(value)
        if problem:
            raise UserError(f"{source_key(cfg, setting.key)}={_show(value)} {problem}; {setting.hint}")
    for key in ("model.actor_hidden_dims", "model.critic_hidden_dims"):
        present, dims = _select(cfg, key)
        if present and (
            not isinstance(dims, list) or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims)
        ):
            raise UserError(f"{key}={_show(dims)} must be a list of positive layer widths; e.g. {key}=[512,512]")
    present, seeds = _select(cfg, "seeds")
    if present and seeds is not None and not _distinct_seeds(seeds):
        raise UserError(
            f"seeds={_show(seeds)} must be a non-empty list of distinct non-negative integers; "
            "e.g. seeds=[0,1,2,3], or seeds=null for the single run of seed="
        )


def _distinct_seeds(seeds: Any) -> bool:
    """``seeds`` (seeds as a batch axis) is a non-empty list of distinct integers >= 0."""
    if not isinstance(seeds, list) or not seeds or len(set(map(str, seeds))) != len(seeds):
        return False
    return all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds)


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(map(_show, value)) + "]"
    return str(value)
