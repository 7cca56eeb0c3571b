"""``rql-data``: download OGBench datasets, generate OGBench-format play datasets offline, inspect dataset files.

rql-data generate cube-single-play-v0 --format minari --task 1   # a Minari dataset instead of .npz files
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from rql_lightning import naming
from rql_lightning.cli.common import user_errors_as_one_line
from rql_lightning.data.dataset_checks import DataConfigError, DatasetNotFoundError, check_npz_keys
from rql_lightning.data.download import OGBENCH_DATASET_URL, download_dataset
from rql_lightning.data.generate import DEFAULT_VAL_FRACTION, SUPPORTED_DATASETS, generate_play_dataset
from rql_lightning.errors import silence_unactionable_warnings

MANIPULATION_PREFIXES = ("cube-", "scene-", "puzzle-")


def _add_data_dir(parser: argparse.ArgumentParser, what: str) -> None:
    default = f"${naming.DATA_DIR_ENV} or {naming.DEFAULT_DATA_DIR}"
    parser.add_argument("--data-dir", type=Path, default=None, help=f"{what} (default: {default})")


def _check_positive(**counts: int | None) -> None:
    """Each count given (not None) is >= 1, else one line naming its flag."""
    for name, value in counts.items():
        if value is not None and value < 1:
            raise DataConfigError(f"--{name.replace('_', '-')}={value} must be >= 1; pass a positive count")


def _cmd_generate(args: argparse.Namespace) -> int:
    _check_positive(num_transitions=args.num_transitions, workers=args.workers, shards=args.shards)
    generate = dict(
        seed=args.seed, num_workers=args.workers, progress=not args.no_progress, val_fraction=args.val_fraction
    )
    if args.format == "minari":
        from rql_lightning.data.minari_datamodule import generate_minari_dataset

        if args.shards > 1:
            raise DataConfigError(
                f"--shards={args.shards} with --format minari: a Minari dataset is one; drop --shards"
            )
        root = naming.minari_root(args.data_dir)
        dataset_id = args.dataset_id or naming.minari_id_of(args.dataset_name, args.task)
        ds = generate_minari_dataset(args.dataset_name, args.task, dataset_id, root, args.num_transitions, **generate)
        print(f"wrote Minari dataset {dataset_id} ({ds.total_episodes} episodes, {ds.total_steps} steps) in {root}")
        print(f"train on it with: rql-train data=minari data.dataset_id={dataset_id} data.data_dir={root}")
        return 0
    data_dir = (args.data_dir or naming.default_data_dir()).expanduser()
    name = args.dataset_name
    target = data_dir / name if args.shards > 1 else naming.dataset_file(data_dir, name)
    path = generate_play_dataset(name, target, args.num_transitions, num_shards=args.shards, **generate)
    if args.shards > 1:
        print(f"{args.shards} shards (each with its -val.npz) are in {path}")
    else:
        print(f"wrote {path} and {naming.val_path_of(path).name}")
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    _check_positive(shards=args.shards)
    data_dir = (args.data_dir or naming.default_data_dir()).expanduser()
    path = download_dataset(
        args.dataset, data_dir, base_url=args.base_url, shards=args.shards, progress=not args.no_progress
    )
    print(f"{args.dataset} is in {path}")
    if path.is_dir():
        command = f"rql-train data.data_kind=100m_shards data.dataset={args.dataset} data.data_dir={data_dir}"
        print(f"train on it with: {command}")
    return 0


def resolve_dataset(dataset: str, data_dir: Path | None) -> tuple[Path, list[Path]]:
    """The dataset's path and its train files (a file, or a shard directory's shards)."""
    candidate = Path(dataset).expanduser()
    if candidate.exists() or candidate.suffix == naming.NPZ_SUFFIX or os.sep in dataset:
        path, name, hint_dir = candidate, naming.base_dataset_name(candidate), candidate.parent
    else:
        hint_dir = (data_dir or naming.default_data_dir()).expanduser()
        name, path = dataset, naming.dataset_file(hint_dir, dataset)
        if not path.exists() and (hint_dir / name).is_dir():
            path = hint_dir / name
    files = naming.list_shards(path) if path.is_dir() else ([path] if path.is_file() else [])
    if not files:
        if name in SUPPORTED_DATASETS:
            hint = f"generate it with: rql-data generate {name} --data-dir {hint_dir}"
        else:
            hint = f"rql-data can generate only: {', '.join(SUPPORTED_DATASETS)}"
        raise DatasetNotFoundError(f"no dataset at {path}; {hint}")
    return path, files


def summarise(files: list[Path]) -> list[tuple[str, int]]:
    """Transitions, episodes, observation and action dims over all files (terminals read, nothing else): info rows."""
    transitions = episodes = 0
    for file in files:
        headers = check_npz_keys(file, ["observations", "actions", "terminals"], "regenerate or re-download it")
        with np.load(file, allow_pickle=False) as data:
            terminals = data["terminals"]
        transitions += len(terminals)
        episodes += int(np.count_nonzero(terminals))
    obs_dim, action_dim = (int(np.prod(headers[k][0][1:], dtype=np.int64)) for k in ("observations", "actions"))
    return [("transitions", transitions), ("episodes", episodes), ("obs dim", obs_dim), ("action dim", action_dim)]


def mask_stats(parts: Iterable) -> tuple[float, float, float]:
    """The share of rows with mask 0 (task success) and the reward range over ``parts`` (read one at a time)."""
    successes = steps = 0
    r_min, r_max = np.inf, -np.inf
    for arrays in parts:
        successes += int(np.count_nonzero(arrays.masks == 0))
        steps += len(arrays)
        r_min = min(r_min, float(arrays.rewards.min()))
        r_max = max(r_max, float(arrays.rewards.max()))
    return successes / max(steps, 1), r_min, r_max


def _cmd_info(args: argparse.Namespace) -> int:
    a_file = Path(args.dataset).expanduser().exists() or args.dataset.endswith(naming.NPZ_SUFFIX)
    if args.minari or not a_file:  # torch and Lightning come in only here, or for --task
        from rql_lightning.data.minari_datamodule import MinariDataModule, has_minari
    if args.minari or (not a_file and has_minari(args.dataset, args.data_dir)):  # as the trainer sees it
        dm = MinariDataModule(args.dataset, chunk_size=1, data_dir=args.data_dir)
        arrays = dm.load_arrays()
        rows = [("dataset", f"{args.dataset} (Minari, {naming.minari_root(args.data_dir) / args.dataset})")]
        rows += [("transitions", len(arrays)), ("episodes", dm.dataset.total_episodes)]
        rows += [("obs dim", arrays.observations.shape[1]), ("action dim", arrays.actions.shape[1])]
        rows.append(("eval env", f"{dm.eval_env_gym_id} (recovered by Minari)"))
        terminal, r_min, r_max = mask_stats([arrays])
        rows.append(("rewards", f"range [{r_min:g}, {r_max:g}], terminal-state rate {terminal:.4f}"))
    else:
        path, files = resolve_dataset(args.dataset, args.data_dir)
        rows = [("dataset", f"{path}" + (f" ({len(files)} shards)" if len(files) > 1 else "")), *summarise(files)]
        if args.task is not None:  # OGBench's own single-task relabelling, read as training reads it
            name = naming.base_dataset_name(files[0])
            if not name.startswith(MANIPULATION_PREFIXES):
                raise DataConfigError(
                    f"--task={args.task} relabelling supports manipulation datasets, not {name!r}; drop --task"
                )
            try:
                singletask_name = naming.singletask_name_of(name, args.task)
            except ValueError as err:
                raise DataConfigError(f"cannot infer the environment: {err}; name the file <dataset>-vN.npz") from None
            from rql_lightning.data.ogbench_datamodule import load_npz

            with warnings.catch_warnings():
                silence_unactionable_warnings()
                success_rate, r_min, r_max = mask_stats(load_npz(file, singletask_name) for file in files)
            rows.append((f"task {args.task}", f"success rate {success_rate:.4f}, reward range [{r_min:g}, {r_max:g}]"))
    for label, value in rows:
        print(f"{label + ':':<13}{value}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rql-data`` console script; returns the exit status (2: one ``error:`` line)."""
    parser = argparse.ArgumentParser(prog="rql-data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    tasks = range(1, 6)  # every OGBench manipulation env's single-task variants

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
        default=1_000_000,  # OGBench's own play datasets: 1000 episodes of 1001 steps
        help="train transitions to collect (rounded up to whole 1001-step episodes)",
    )
    _add_data_dir(gen, "output directory")
    gen.add_argument("--workers", type=int, default=1, help="worker processes")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--shards", type=int, default=1, help="split into this many files under <data-dir>/<dataset_name>/ (100M-style)"
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
        choices=tasks,
        default=1,
        help="with --format minari: the single task whose rewards/terminations the dataset stores",
    )
    gen.add_argument(
        "--dataset-id",
        default=None,
        help="with --format minari: the Minari id (default rql/<dataset without -vN>-task<N>-v0)",
    )

    down = sub.add_parser("download", help="fetch an OGBench dataset (100M shards too), resumable")
    down.add_argument("dataset", help="an OGBench dataset name: cube-double-play-v0, puzzle-4x4-play-100m-v0, ...")
    _add_data_dir(down, "where to put it")
    down.add_argument("--shards", type=int, default=None, help="a 100M dataset: only its first N shards")
    down.add_argument("--base-url", default=OGBENCH_DATASET_URL, help="where the files are published (a mirror)")
    down.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    info = sub.add_parser("info", help="summarise a dataset file, shard directory, or dataset name")
    info.add_argument("dataset", help="path to a .npz file / shard directory, or a dataset name in --data-dir")
    _add_data_dir(info, "where to look up dataset names")
    info.add_argument(
        "--task",
        type=int,
        choices=tasks,
        default=None,
        help="relabel with this single-task reward through ogbench and report success",
    )
    info.add_argument(
        "--minari",
        action="store_true",
        help="DATASET is a Minari id under the Minari root (--data-dir, else $MINARI_DATASETS_PATH); "
        "assumed when no such file exists but the Minari dataset does",
    )
    args = parser.parse_args(argv)
    command = {"generate": _cmd_generate, "download": _cmd_download, "info": _cmd_info}[args.command]
    return user_errors_as_one_line(lambda: command(args))


if __name__ == "__main__":
    sys.exit(main())
