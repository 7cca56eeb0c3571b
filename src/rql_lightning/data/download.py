"""Getting OGBench data onto disk, and the commands an error suggests. A 100M dataset (~100 GB of shards) resumes
``<file>.part`` with HTTP ``Range`` and names a file only once it is whole and its headers read back
(:func:`download_file`); 1M files fetched by training go through ogbench's own downloader.
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from rql_lightning.data.dataset_checks import DatasetFormatError, DownloadError, check_npz_keys
from rql_lightning.data.generate import SUPPORTED_DATASETS
from rql_lightning.naming import VAL_SUFFIX, dataset_file, parse_singletask, shard_path, val_path_of

OGBENCH_DATASET_URL = "https://rail.eecs.berkeley.edu/datasets/ogbench"  # where OGBench publishes its files
OGBENCH_100M_SHARDS = 100
PART_SUFFIX = ".part"
_SIZED = re.compile(r"^(?P<stem>.+)-(?P<size>\d+m)-(?P<version>v\d+)$")  # puzzle-4x4-play-100m-v0
_CONTENT_RANGE = re.compile(r"bytes (?P<start>\d+)-\d+/(?P<total>\d+)")
DOWNLOAD_TIMEOUT_S = 60
CHUNK_BYTES = 1 << 20


def official_files(dataset: str, shards: int | None = None) -> list[str]:
    """The files OGBench publishes for ``dataset``, below both the URL and the data dir: a sized name
    (``puzzle-4x4-play-100m-v0``) is a folder of shards (the first ``shards``), each with its ``-val.npz``."""
    m = _SIZED.match(dataset)
    if m is None:
        return [f"{dataset}.npz", f"{dataset}{VAL_SUFFIX}"]
    count = OGBENCH_100M_SHARDS if shards is None else shards
    shards_ = [shard_path(dataset, f"{m['stem']}-{m['version']}", i) for i in range(count)]
    return [p.as_posix() for shard in shards_ for p in (shard, val_path_of(shard))]


def download_file(url: str, dest: Path, *, progress: bool = True) -> Path:
    """``dest``, fetched from ``url`` unless present; resumes ``<dest>.part``; renames only a complete file."""
    if dest.exists():
        return dest  # only a complete, checked file ever gets this name
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + PART_SUFFIX)
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part is as long as the file or longer: it cannot be resumed
            part.unlink()
            return download_file(url, dest, progress=progress)
        raise DownloadError(
            f"{url} answered HTTP {err.code} ({err.reason}); check the dataset name (OGBench's 100M datasets: "
            f"cube-quadruple-play-100m-v0, puzzle-4x4-play-100m-v0, ...) or --base-url"
        ) from None
    except (urllib.error.URLError, OSError) as err:
        kept = f"; {part} ({have} bytes) is kept" if have else ""
        raise DownloadError(
            f"cannot reach {url} ({getattr(err, 'reason', err)}){kept}: run the same command again where the "
            f"network allows (it resumes)"
        ) from None
    with response:
        match = _CONTENT_RANGE.match(response.headers.get("Content-Range") or "")
        if response.status == 206 and match and int(match["start"]) == have:
            total, mode = int(match["total"]), "ab"
        else:  # the whole file (a server that ignores Range answers 200)
            length = response.headers.get("Content-Length")
            total, mode, have = (int(length) if length is not None else None), "wb", 0
        bar = tqdm(total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=not progress)
        try:
            with open(part, mode) as f, bar:
                while chunk := response.read(CHUNK_BYTES):
                    f.write(chunk)
                    bar.update(len(chunk))
        except (http.client.IncompleteRead, ConnectionError, TimeoutError):
            pass  # a connection that drops is a short file: said below
    size = part.stat().st_size
    if total is not None and size < total:
        raise DownloadError(
            f"downloading {url} stopped at {size} of {total} bytes; {part} is kept: run the same command again "
            f"to resume"
        )
    if total is not None and size > total:
        part.unlink()  # longer than the file: not a prefix of it
        raise DownloadError(
            f"{url} delivered {size} bytes, more than the {total} it announced; it was deleted, {dest} was not "
            f"written. Run the same command again to fetch it anew"
        )
    try:
        check_npz_keys(part, ("observations", "actions", "terminals"), "delete it")
    except DatasetFormatError as err:
        part.unlink()
        raise DownloadError(
            f"{url} delivered a file that is not an OGBench dataset ({err}); it was deleted, {dest} was not "
            f"written. Run the same command again to fetch it anew"
        ) from None
    os.replace(part, dest)
    return dest


def download_dataset(
    dataset: str,
    data_dir: str | Path,
    *,
    base_url: str = OGBENCH_DATASET_URL,
    shards: int | None = None,
    progress: bool = True,
) -> Path:
    """Fetch ``dataset`` into ``data_dir`` as training reads it (files present kept); returns its file or folder."""
    data_dir = Path(data_dir).expanduser()
    for name in official_files(dataset, shards):
        download_file(f"{base_url.rstrip('/')}/{name}", data_dir / name, progress=progress)
    return data_dir / dataset if _SIZED.match(dataset) else dataset_file(data_dir, dataset)


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
        f"Download OGBench's shards into {data_dir}/{dataset}/ with: rql-data download {dataset} --data-dir {data_dir}"
    )
    base = parse_singletask(singletask_name).dataset
    if base in SUPPORTED_DATASETS:
        text += (
            f", or generate shards locally: rql-data generate {base} --shards 100 --num-transitions 100000000 "
            f"--data-dir {data_dir} and train with data.dataset_path={data_dir}/{base}"
        )
    return text + f", or train on the 1M-transition file instead: data.data_kind=standard data.dataset={base}"
