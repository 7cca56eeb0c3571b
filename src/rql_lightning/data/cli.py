"""``rql-data``: generate OGBench-format play datasets offline and inspect dataset files.

Examples::

    rql-data generate cube-single-play-v0 --num-transitions 1000000 --workers 2
    rql-data info cube-single-play-v0 --task 1
    rql-data generate cube-single-play-v0 --format minari --task 1   # a Minari dataset instead of .npz files
    rql-data info rql/cube-single-play-task1-v0 --minari            # a Minari dataset under the Minari root
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from rql_lightning.data.generate import (
    DEFAULT_VAL_FRACTION,
    SUPPORTED_DATASETS,
    VAL_SUFFIX,
    generate_play_dataset,
    quiet_sim_warnings,
)

DATA_DIR_ENV = "OGBENCH_DATA_DIR"
DEFAULT_DATA_DIR = "~/.ogbench/data"
# OGBench's own play datasets hold 1000 episodes of 1001 steps (~1M transitions).
DEFAULT_NUM_TRANSITIONS = 1_000_000
# Every OGBench manipulation environment defines tasks 1..5 for its single-task variants.
NUM_SINGLETASK_TASKS = 5
MANIPULATION_PREFIXES = ("cube-", "scene-", "puzzle-")
_SHARD_SUFFIX = re.compile(r"-\d{3,}$")
_VERSION_SUFFIX = re.compile(r"-v\d+$")


def default_data_dir() -> Path:
    """Where OGBench keeps datasets: ``$OGBENCH_DATA_DIR`` if set, else OGBench's default directory."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rql-data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate a play dataset with OGBench's scripted oracles")
    gen.add_argument(
        "dataset_name",
        choices=SUPPORTED_DATASETS,
        metavar="dataset_name",
        help=f"one of: {', '.join(SUPPORTED_DATASETS)}",
    )
    gen.add_argument(
        "--num-transitions",
        type=int,
        default=DEFAULT_NUM_TRANSITIONS,
        help="train transitions to collect (rounded up to whole 1001-step episodes)",
    )
    gen.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"output directory (default: ${DATA_DIR_ENV} or {DEFAULT_DATA_DIR})",
    )
    gen.add_argument("--workers", type=int, default=1, help="worker processes")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--shards",
        type=int,
        default=1,
        help="split into this many files under <data-dir>/<dataset_name>/ (100M-style layout)",
    )
    gen.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULT_VAL_FRACTION,
        help="validation episodes per train episode (at least one per file)",
    )
    gen.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    gen.add_argument(
        "--format",
        choices=("npz", "minari"),
        default="npz",
        help="npz: OGBench files; minari: a Minari dataset (relabelled for --task) under the Minari root "
        "(--data-dir, else $MINARI_DATASETS_PATH, else ~/.minari/datasets)",
    )
    gen.add_argument(
        "--task",
        type=int,
        choices=range(1, NUM_SINGLETASK_TASKS + 1),
        default=1,
        help="with --format minari: the single task whose rewards/terminations the dataset stores",
    )
    gen.add_argument(
        "--dataset-id",
        default=None,
        help="with --format minari: the Minari id (default rql/<dataset without -vN>-task<N>-v0)",
    )

    info = sub.add_parser("info", help="summarise a dataset file, shard directory, or dataset name")
    info.add_argument("dataset", help="path to a .npz file / shard directory, or a dataset name in --data-dir")
    info.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help=f"where to look up dataset names (default: ${DATA_DIR_ENV} or {DEFAULT_DATA_DIR})",
    )
    info.add_argument(
        "--task",
        type=int,
        choices=range(1, NUM_SINGLETASK_TASKS + 1),
        default=None,
        help="relabel with this single-task reward through ogbench and report success",
    )
    info.add_argument(
        "--minari",
        action="store_true",
        help="DATASET is a Minari id under the Minari root (--data-dir, else $MINARI_DATASETS_PATH); "
        "assumed when no such file exists but the Minari dataset does",
    )
    return parser


def _minari_id(name: str, task: int) -> str:
    return f"rql/{_VERSION_SUFFIX.sub('', name)}-task{task}-v0"


def _cmd_generate_minari(args: argparse.Namespace) -> int:
    """Generate into a temporary .npz, then store it, relabelled for one task, as a Minari dataset."""
    import tempfile

    from rql_lightning.data.minari import minari_root, write_play_dataset_as_minari

    name = args.dataset_name
    if args.shards > 1:
        raise SystemExit("rql-data generate: --format minari writes one dataset; drop --shards")
    root = minari_root(args.data_dir)
    dataset_id = args.dataset_id or _minari_id(name, args.task)
    if (root / dataset_id).exists():
        raise SystemExit(f"rql-data generate: {root / dataset_id} exists; delete it or pass another --dataset-id")
    prefix, version = name.rsplit("-", 1)
    with tempfile.TemporaryDirectory(prefix="rql-minari-") as tmp:
        try:
            path = generate_play_dataset(
                name,
                Path(tmp) / f"{name}.npz",
                args.num_transitions,
                seed=args.seed,
                num_workers=args.workers,
                progress=not args.no_progress,
                val_fraction=args.val_fraction,
            )
        except ValueError as err:
            raise SystemExit(f"rql-data generate: {err}") from None
        with warnings.catch_warnings():
            quiet_sim_warnings()
            ds = write_play_dataset_as_minari(path, f"{prefix}-singletask-task{args.task}-{version}", dataset_id, root)
    print(f"wrote Minari dataset {dataset_id} ({ds.total_episodes} episodes, {ds.total_steps} steps) in {root}")
    print(f"train on it with: rql-train data=minari data.dataset_id={dataset_id} data.data_dir={root}")
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    if args.format == "minari":
        return _cmd_generate_minari(args)
    data_dir = (args.data_dir or default_data_dir()).expanduser()
    name = args.dataset_name
    target = data_dir / name if args.shards > 1 else data_dir / f"{name}.npz"
    try:
        path = generate_play_dataset(
            name,
            target,
            args.num_transitions,
            seed=args.seed,
            num_workers=args.workers,
            progress=not args.no_progress,
            val_fraction=args.val_fraction,
            num_shards=args.shards,
        )
    except ValueError as err:
        raise SystemExit(f"rql-data generate: {err}") from None
    if args.shards > 1:
        print(f"{args.shards} shards (each with its -val.npz) are in {path}")
    else:
        print(f"wrote {path} and {path.name[: -len('.npz')]}{VAL_SUFFIX}")
    return 0


def _dataset_base_name(path: Path) -> str:
    """``.../cube-single-play-v0-007.npz`` -> ``cube-single-play-v0`` (shard and val suffixes dropped)."""
    stem = path.name[: -len(".npz")] if path.name.endswith(".npz") else path.name
    if stem.endswith("-val"):
        stem = stem[: -len("-val")]
    return _SHARD_SUFFIX.sub("", stem)


def _resolve(dataset: str, data_dir: Path | None) -> tuple[Path, list[Path]]:
    """Find the dataset's train files; exit with a one-line hint on how to generate it if there are none."""
    candidate = Path(dataset).expanduser()
    if candidate.exists() or candidate.suffix == ".npz" or os.sep in dataset:
        path = candidate
        name = _dataset_base_name(candidate)
        hint_dir = candidate.parent
    else:
        hint_dir = (data_dir or default_data_dir()).expanduser()
        name = dataset
        path = hint_dir / f"{name}.npz"
        if not path.exists() and (hint_dir / name).is_dir():
            path = hint_dir / name
    if path.is_dir():
        files = sorted(p for p in path.glob("*.npz") if not p.name.endswith(VAL_SUFFIX))
    else:
        files = [path] if path.is_file() else []
    if not files:
        if name in SUPPORTED_DATASETS:
            hint = f"generate it with: rql-data generate {name} --data-dir {hint_dir}"
        else:
            hint = f"rql-data can generate only: {', '.join(SUPPORTED_DATASETS)}"
        raise SystemExit(f"rql-data info: no dataset at {path}; {hint}")
    return path, files


def _summarise(files: list[Path]) -> tuple[int, int, int, int]:
    """Transitions, episodes, observation and action dims over all files."""
    transitions = episodes = 0
    ob_dim = act_dim = 0
    for file in files:
        with np.load(file) as data:
            terminals = data["terminals"]
            transitions += len(terminals)
            episodes += int(np.count_nonzero(terminals))
            ob_dim = int(np.prod(data["observations"].shape[1:]))
            act_dim = int(np.prod(data["actions"].shape[1:]))
    return transitions, episodes, ob_dim, act_dim


def _relabel_stats(name: str, files: list[Path], task: int) -> tuple[float, float, float]:
    """Success rate and reward range under OGBench's own single-task relabelling (from qpos/button states)."""
    import ogbench

    if not _VERSION_SUFFIX.search(name):
        raise SystemExit(f"rql-data info: cannot infer the environment from {name!r} (expected '...-vN')")
    prefix, version = name.rsplit("-", 1)
    singletask_name = f"{prefix}-singletask-task{task}-{version}"
    env = None
    successes = steps = 0
    r_min, r_max = np.inf, -np.inf
    for file in files:
        if not Path(str(file)[: -len(".npz")] + VAL_SUFFIX).exists():
            raise SystemExit(f"rql-data info: {file} has no {VAL_SUFFIX} companion, which ogbench's loader needs")
        with warnings.catch_warnings():
            quiet_sim_warnings()
            if env is None:
                env, train, _ = ogbench.make_env_and_datasets(singletask_name, dataset_path=str(file))
            else:
                train, _ = ogbench.make_env_and_datasets(
                    singletask_name, dataset_path=str(file), dataset_only=True, cur_env=env
                )
        successes += int(np.count_nonzero(train["masks"] == 0))
        steps += len(train["masks"])
        r_min = min(r_min, float(train["rewards"].min()))
        r_max = max(r_max, float(train["rewards"].max()))
    return successes / max(steps, 1), r_min, r_max


def _is_minari(args: argparse.Namespace) -> bool:
    from rql_lightning.data.minari import minari_root

    if args.minari:
        return True
    if Path(args.dataset).expanduser().exists() or args.dataset.endswith(".npz"):
        return False
    return (minari_root(args.data_dir) / args.dataset / "data").is_dir()


def _cmd_info_minari(args: argparse.Namespace) -> int:
    """Summarise a Minari dataset as the trainer sees it (after conversion and validation)."""
    from rql_lightning.data.minari import MinariDataModule, minari_root
    from rql_lightning.data.validate import DatasetError

    dm = MinariDataModule(args.dataset, chunk_size=1, data_dir=args.data_dir)
    try:
        arrays = dm.load_arrays()
    except DatasetError as err:  # DatasetNotFoundError included
        raise SystemExit(f"rql-data info: {err}") from None
    ds = dm.dataset
    print(f"dataset:     {args.dataset} (Minari, {minari_root(args.data_dir) / args.dataset})")
    print(f"transitions: {len(arrays)}")
    print(f"episodes:    {ds.total_episodes}")
    print(f"obs dim:     {arrays.observations.shape[1]}")
    print(f"action dim:  {arrays.actions.shape[1]}")
    print(f"eval env:    {dm.eval_env_gym_id} (recovered by Minari)")
    terminal = float(np.mean(arrays.masks == 0))
    r_min, r_max = float(arrays.rewards.min()), float(arrays.rewards.max())
    print(f"rewards:     range [{r_min:g}, {r_max:g}], terminal-state rate {terminal:.4f}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    if _is_minari(args):
        return _cmd_info_minari(args)
    path, files = _resolve(args.dataset, args.data_dir)
    name = _dataset_base_name(files[0])
    transitions, episodes, ob_dim, act_dim = _summarise(files)
    print(f"dataset:     {path}" + (f" ({len(files)} shards)" if len(files) > 1 else ""))
    print(f"transitions: {transitions}")
    print(f"episodes:    {episodes}")
    print(f"obs dim:     {ob_dim}")
    print(f"action dim:  {act_dim}")
    if args.task is not None:
        if not name.startswith(MANIPULATION_PREFIXES):
            raise SystemExit(f"rql-data info: --task relabelling supports manipulation datasets, not {name!r}")
        success_rate, r_min, r_max = _relabel_stats(name, files, args.task)
        print(f"task {args.task}:      success rate {success_rate:.4f}, reward range [{r_min:g}, {r_max:g}]")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rql-data`` console script; returns the exit status."""
    args = _build_parser().parse_args(argv)
    if args.command == "generate":
        return _cmd_generate(args)
    return _cmd_info(args)


if __name__ == "__main__":
    sys.exit(main())
