"""How to get a dataset that is not on disk: ogbench's downloader, and the commands an error suggests."""

from __future__ import annotations

import urllib.error
from pathlib import Path

from rql_lightning.data.errors import DatasetNotFoundError
from rql_lightning.data.generate.protocol import SUPPORTED_DATASETS
from rql_lightning.naming import DATA_DIR_ENV, VAL_SUFFIX, dataset_file, dataset_name_of

OGBENCH_DATASET_URL = "https://rail.eecs.berkeley.edu/datasets/ogbench"


def obtain_hint(dataset_name: str, data_dir: Path) -> str:
    """The command that puts ``<data_dir>/<dataset_name>.npz`` (and its -val.npz) in place."""
    fetch = f"python -c \"import ogbench; ogbench.download_datasets(['{dataset_name}'], '{data_dir}')\""
    if dataset_name in SUPPORTED_DATASETS:
        generate = f"rql-data generate {dataset_name} --data-dir {data_dir}"
        return f"{fetch} (needs network), or generate it locally: {generate}"
    return f"{fetch} (needs network; rql-data can generate only manipulation play datasets)"


def shards_hint(dataset: str, singletask_name: str, data_dir: Path) -> str:
    """How to obtain a shard directory: the official download, or local generation."""
    text = (
        f"Download OGBench's shards into {data_dir}/{dataset}/ (e.g. wget -r -np -nH --cut-dirs=2 -A '*.npz' "
        f"-P {data_dir} {OGBENCH_DATASET_URL}/{dataset}/)"
    )
    base = dataset_name_of(singletask_name)
    if base in SUPPORTED_DATASETS:
        text += (
            f", or generate shards locally: rql-data generate {base} --shards 100 --num-transitions 100000000 "
            f"--data-dir {data_dir} and train with data.dataset_path={data_dir}/{base}"
        )
    return text + f", or train on the 1M-transition file instead: data.data_kind=standard data.dataset={base}"


def fetch_official(dataset_name: str, data_dir: Path) -> Path:
    """Download ``<dataset_name>.npz`` and its ``-val.npz`` with ogbench's downloader (skips files present)."""
    import ogbench.utils

    data_dir = Path(data_dir).expanduser()
    path = dataset_file(data_dir, dataset_name)
    try:
        ogbench.utils.download_datasets([dataset_name], str(data_dir))
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", None) or err
        raise DatasetNotFoundError(
            f"{path} (or its {VAL_SUFFIX}) is not in {data_dir} (data.data_dir / ${DATA_DIR_ENV}) and downloading "
            f"it from OGBench failed ({reason}). Get it with: {obtain_hint(dataset_name, data_dir)}"
        ) from None
    return path
