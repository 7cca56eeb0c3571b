"""``rql-train``: the Hydra main that composes a run and hands it to :func:`rql_lightning.training.train`."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Glob, IntervalSweep
from hydra.errors import CompactHydraException, InstantiationException
from hydra.types import RunMode
from omegaconf import DictConfig

from rql_lightning.checks import check_config, check_machine, check_overrides, check_run_dir_arguments
from rql_lightning.cli.common import USAGE_EXIT_CODE, user_errors_as_one_line
from rql_lightning.config import CONF_DIR, compose_config, print_config_tree
from rql_lightning.errors import UserError, silence_unactionable_warnings
from rql_lightning.run_lock import is_rank_zero_process


def print_summary(summary: dict[str, Any]) -> None:
    lines = [
        f"Finished {summary['task']} task {summary['task_id']} (seed {summary['seed']}) at step {summary['step']}."
    ]
    if "success_rate" in summary:
        mean = " (mean over seeds)" if summary.get("per_seed") else ""
        mean = " (mean over tasks and seeds)" if summary.get("per_task") else mean
        lines.append(f"  success rate: {summary['success_rate']:.2f}   return: {summary['return']:.1f}{mean}")
    replicas = {f"seed {seed}": numbers for seed, numbers in (summary.get("per_seed") or {}).items()}
    for task, per_seed in (summary.get("per_task") or {}).items():
        replicas |= {f"task {task} seed {seed}": numbers for seed, numbers in per_seed.items()}
    for name, numbers in replicas.items():
        if numbers.get("success_rate") is not None:
            ret = numbers.get("return", float("nan"))
            lines.append(f"    {name}: success rate {numbers['success_rate']:.2f}   return {ret:.1f}")
    for key, label in (("checkpoint", "checkpoint:   "), ("tensorboard", "TensorBoard:  tensorboard --logdir ")):
        if summary.get(key):
            lines.append(f"  {label}{summary[key]}")
    print("\n".join(lines), flush=True)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    silence_unactionable_warnings()
    from rql_lightning.training import train

    if cfg.get("extras", {}).get("print_config") and is_rank_zero_process():
        user_errors_as_one_line(lambda: print_config_tree(cfg))
    # the settings were checked before launch, and a single run's machine too; a sweep's job checks its own machine
    single = HydraConfig.get().mode == RunMode.RUN
    summary = user_errors_as_one_line(lambda: train(cfg, config_checked=True, machine_checked=single))
    print_summary(summary)
    return summary.get("success_rate")


# Flags that make Hydra print instead of running a job, or compose another primary config: nothing to check up front.
_NOT_A_RUN = ("-c", "--cfg", "-p", "--package", "-h", "--help", "--hydra-help", "-i", "--info")
_NOT_A_RUN += ("-cp", "--config-path", "-cn", "--config-name")


def check_before_hydra(argv: list[str]) -> None:
    """Check every job's config before Hydra writes a directory or launches a sweep's first job (a single run also
    against this machine; a sweep's jobs where they start). Composition errors are left to Hydra to report."""
    check_run_dir_arguments(argv)
    flags = [a.split("=", 1)[0] for a in argv if a.startswith("-")]
    if any(f in _NOT_A_RUN for f in flags):
        return
    overrides, extra_dirs, args = [], [], iter(argv)
    for arg in args:
        if arg in ("-cd", "--config-dir"):
            arg = f"--config-dir={next(args, '')}"
        if arg.startswith("--config-dir="):
            extra_dirs.append(arg.split("=", 1)[1])
        elif not arg.startswith("-"):
            overrides.append(arg)
    if extra_dirs:
        paths = ",".join(f"file://{os.path.abspath(d)}" for d in extra_dirs)
        overrides.append(f"hydra.searchpath=[{paths}]")
    multirun = any(f in ("-m", "--multirun") for f in flags)
    try:
        jobs = sweep_jobs(overrides) if multirun else [([], overrides)]
        composed = [(swept, job, compose_config(job)) for swept, job in jobs]
    except Exception:  # noqa: BLE001 (Hydra reports composition errors itself, in its own words)
        return
    for swept, job, cfg in composed:
        try:
            check_overrides(job)
            check_config(cfg)
            if not multirun:
                check_machine(cfg)
        except UserError as err:
            if not multirun:
                raise
            raise UserError(f"sweep job {' '.join(swept)}: {err}") from None


def sweep_jobs(overrides: list[str]) -> list[tuple[list[str], list[str]]]:
    """Every job of a multirun as ``(its swept values, its overrides)``: the command line's sweeps and the sweeper's
    ``hydra.sweeper.params`` (each choice, an interval's two ends), crossed as Hydra's basic sweeper does."""
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    plain = [o.input_line for o in parsed if not o.is_sweep_override()]
    given = {o.key_or_group for o in parsed}
    params = compose_config(plain, with_hydra=True).hydra.sweeper.get("params") or {}
    parsed += parser.parse_overrides([f"{k}={v}" for k, v in params.items() if k not in given])
    axes = []
    for o in parsed:
        if not o.is_sweep_override():
            axes.append([o.input_line])
            continue
        sweep = o.value()
        if isinstance(sweep, IntervalSweep):
            values = [str(sweep.start), str(sweep.end)]
        elif isinstance(sweep, Glob):
            values = sweep.filter(sorted(p.stem for p in (Path(CONF_DIR) / o.key_or_group).glob("*.yaml")))
        else:
            values = list(o.sweep_string_iterator())
        axes.append([f"{o.get_key_element()}={v}" for v in values])
    swept = [i for i, o in enumerate(parsed) if o.is_sweep_override()]
    return [([job[i] for i in swept], list(job)) for job in itertools.product(*axes)]


def train_main() -> None:
    """Console script ``rql-train``; Hydra's own usage errors (exit 1, like a crash) exit 2 like ours."""
    user_errors_as_one_line(lambda: check_before_hydra(sys.argv[1:]))
    try:
        _hydra_main()
    except SystemExit as exit_:
        cause = exit_.__context__  # the exception Hydra reported before calling sys.exit(1)
        if (
            exit_.code == 1
            and isinstance(cause, CompactHydraException)
            and not isinstance(cause, InstantiationException)
        ):
            raise SystemExit(USAGE_EXIT_CODE) from None
        raise


if __name__ == "__main__":
    train_main()
