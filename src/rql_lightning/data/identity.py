"""What a run trained on, as a small JSON-safe record: results key runs by it so different data never pools.

``key = "<source>:<dataset>#<fingerprint>"``; the fingerprint hashes each file's size and its first
and last MiB, which tells apart any two files a run could plausibly train on (a 100k vs a 1M
generated file, noisy vs play data, an official download vs a local generation) while reading at
most 2 MiB per file, so it stays cheap for GB files and shard directories.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

FINGERPRINT_BYTES = 1 << 20  # read from each end of each file
FINGERPRINT_HEX = 12


def data_files(path: str | Path) -> list[Path]:
    """The files under ``path`` (itself when a file), sorted, hidden ones (temp files) skipped."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))


def fingerprint(files: Iterable[Path], root: Path | None = None) -> str:
    """A short hash of each file's size, first and last MiB (and its name below ``root`` when given)."""
    digest = hashlib.blake2b(digest_size=FINGERPRINT_HEX // 2)
    for file in files:
        size = file.stat().st_size
        if root is not None:
            digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(size.to_bytes(8, "little"))
        with open(file, "rb") as f:
            digest.update(f.read(FINGERPRINT_BYTES))
            if size > FINGERPRINT_BYTES:
                f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
                digest.update(f.read(FINGERPRINT_BYTES))
    return digest.hexdigest()


def data_identity(source: str, dataset: str, path: str | Path | None, files: list[Path] | None = None) -> dict:
    """``{source, dataset, path, size_bytes, fingerprint, key}`` of the data at ``path`` (a file or directory).

    ``files``: the files that hold the data when not everything under ``path`` does (e.g. no ``-val``).
    """
    path = Path(path) if path is not None else None
    if files is None:
        files = data_files(path) if path is not None else []
    root = path if path is not None and path.is_dir() else None
    fp = fingerprint(files, root) if files else "missing"
    return {
        "source": source,
        "dataset": dataset,
        "path": str(path) if path is not None else None,
        "size_bytes": sum(f.stat().st_size for f in files),
        "fingerprint": fp,
        "key": f"{source}:{dataset}#{fp}",
    }
