"""``rql-train``: the Hydra main that composes a run and hands it to :func:`rql_lightning.training.train`."""

from __future__ import annotations

import os
import sys
from typing import Any

import hydra
from omegaconf import DictConfig

from rql_lightning.checks import check_run_dir_arguments
from rql_lightning.cli.common import USAGE_EXIT_CODE, fail, silence_unactionable_warnings, user_errors_as_one_line
from rql_lightning.config import CONF_DIR, print_config_tree
from rql_lightning.errors import UserError


def print_summary(summary: dict[str, Any]) -> None:
    lines = [
        f"Finished {summary['task']} task {summary['task_id']} (seed {summary['seed']}) at step {summary['step']}."
    ]
    if "success_rate" in summary:
        mean = " (mean over seeds)" if summary.get("per_seed") else ""
        lines.append(f"  success rate: {summary['success_rate']:.2f}   return: {summary['return']:.1f}{mean}")
    for seed, numbers in (summary.get("per_seed") or {}).items():
        if numbers.get("success_rate") is not None:
            ret = numbers.get("return", float("nan"))
            lines.append(f"    seed {seed}: success rate {numbers['success_rate']:.2f}   return {ret:.1f}")
    if summary.get("checkpoint"):
        lines.append(f"  checkpoint:   {summary['checkpoint']}")
    if summary.get("tensorboard"):
        lines.append(f"  TensorBoard:  tensorboard --logdir {summary['tensorboard']}")
    print("\n".join(lines), flush=True)


def _is_first_process() -> bool:
    """Rank 0 of a DDP launch (Lightning starts the other ranks by re-running this command)."""
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train")
def _hydra_main(cfg: DictConfig) -> float | None:
    silence_unactionable_warnings()
    from rql_lightning.training import train

    if cfg.get("extras", {}).get("print_config") and _is_first_process():
        user_errors_as_one_line(lambda: print_config_tree(cfg))
    summary = user_errors_as_one_line(lambda: train(cfg))
    print_summary(summary)
    return summary.get("success_rate")


# Flags that make Hydra print or sweep instead of running one job: nothing to validate up front.
_NOT_ONE_JOB = ("-m", "--multirun", "-c", "--cfg", "-p", "--package", "-h", "--help", "--hydra-help", "-i", "--info")
_OWN_PRIMARY = ("-cp", "--config-path", "-cn", "--config-name")


def validate_before_hydra(argv: list[str]) -> None:
    """Compose and check the run's config before Hydra creates its directory or rewrites its
    ``.hydra/config.yaml``: a bad value never touches an existing run (or its checkpoints).

    Composition problems themselves (an unknown group option, a typo in a key) are left to Hydra,
    which reports them; ``--config-dir`` (a user's own config groups) is searched as Hydra would."""
    from rql_lightning.checks import check_config
    from rql_lightning.config import compose_config

    flags = [a.split("=", 1)[0] for a in argv if a.startswith("-")]
    if any(f in _NOT_ONE_JOB or f in _OWN_PRIMARY for f in flags):
        return
    overrides, extra_dirs, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-cd", "--config-dir") and i + 1 < len(argv):
            extra_dirs.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--config-dir="):
            extra_dirs.append(arg.split("=", 1)[1])
        elif not arg.startswith("-"):
            overrides.append(arg)
        i += 1
    if extra_dirs:
        paths = ",".join(f"file://{os.path.abspath(d)}" for d in extra_dirs)
        overrides.append(f"hydra.searchpath=[{paths}]")
    try:
        cfg = compose_config(overrides)
    except Exception:  # noqa: BLE001 (Hydra reports composition errors itself, in its own words)
        return
    check_config(cfg)


def train_main() -> None:
    """Console script ``rql-train``.

    Hydra reports a bad command line or config (unknown group option, key not in the config,
    unparsable override) as a short message and exits 1, the same code as a crash; we exit 2
    for those, like our own usage errors.
    """
    from hydra.errors import CompactHydraException, InstantiationException

    try:
        check_run_dir_arguments(sys.argv[1:])
        validate_before_hydra(sys.argv[1:])
    except UserError as err:
        fail(str(err))
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
