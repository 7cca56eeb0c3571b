"""Official OGBench files: found in the data dir, else fetched by ogbench's own downloader.

Only the transport is faked (``urllib.request.urlopen``, which ``ogbench.utils.download_datasets`` calls):
the downloader, its temp-file-and-rename, our loader and validation all run for real."""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from rql_lightning.config import compose_config
from rql_lightning.data.dataset_checks import DatasetNotFoundError
from rql_lightning.data.ogbench_datamodule import (
    OGBenchDataModule,
    ShardedOGBenchDataModule,
    load_singletask,
)

NAME = "cube-single-play-singletask-task1-v0"
DATASET = "cube-single-play-v0"
URL_PREFIX = "https://rail.eecs.berkeley.edu/datasets/ogbench/"


class FakeResponse(io.BytesIO):
    """What urlopen returns, as far as ogbench's downloader uses it: iterable bytes with a length."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.length = len(data)


@pytest.fixture
def served(cube_single_dataset, monkeypatch):
    """urlopen serving the generated dataset's two files under OGBench's URLs; records the URLs asked for."""
    files = {
        f"{DATASET}.npz": cube_single_dataset.read_bytes(),
        f"{DATASET}-val.npz": Path(str(cube_single_dataset).replace(".npz", "-val.npz")).read_bytes(),
    }
    requests: list[str] = []

    def urlopen(url, *args, **kwargs):
        requests.append(url)
        assert url.startswith(URL_PREFIX), url
        name = url[len(URL_PREFIX) :]
        if name not in files:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)
        return FakeResponse(files[name])

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requests


@pytest.fixture
def offline(monkeypatch):
    def urlopen(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


def config_datamodule(tmp_path, *overrides: str) -> OGBenchDataModule:
    cfg = compose_config([f"paths.output_dir={tmp_path / 'run'}", *overrides])
    return instantiate(cfg.data, _convert_="all")


def test_task_and_id_download_into_the_data_dir_then_load(served, cube_single_dataset, tmp_path, monkeypatch):
    """`task=cube-single task.id=1` with $OGBENCH_DATA_DIR: ogbench's downloader fetches both files there."""
    data_dir = tmp_path / "ogbench-data"
    monkeypatch.setenv("OGBENCH_DATA_DIR", str(data_dir))
    dm = config_datamodule(tmp_path, "task=cube-single", "task.id=1", "data.batch_size=32")
    assert dm.data_dir == data_dir and dm.singletask_name == NAME
    dm.prepare_data()
    assert sorted(served) == [URL_PREFIX + f"{DATASET}-val.npz", URL_PREFIX + f"{DATASET}.npz"]
    assert sorted(p.name for p in data_dir.iterdir()) == [f"{DATASET}-val.npz", f"{DATASET}.npz"]  # no .tmp left
    dm.setup("fit")
    expected, _ = load_singletask(NAME, cube_single_dataset)
    assert np.array_equal(dm.train_sampler.observations.numpy(), expected.observations)
    batch = next(iter(dm.train_dataloader()))
    assert batch.action_chunks.shape == (32, 5 * 5)

    dm.prepare_data()  # present now: no second download
    assert len(served) == 2


def test_data_dir_override_beats_the_environment(served, tmp_path, monkeypatch):
    monkeypatch.setenv("OGBENCH_DATA_DIR", str(tmp_path / "from-env"))
    dm = config_datamodule(tmp_path, f"data.data_dir={tmp_path / 'explicit'}")
    dm.prepare_data()
    assert (tmp_path / "explicit" / f"{DATASET}.npz").is_file()
    assert not (tmp_path / "from-env").exists()


def test_present_file_is_used_without_network(cube_single_dataset, offline, tmp_path):
    dm = OGBenchDataModule(NAME, chunk_size=5, batch_size=32, data_dir=str(cube_single_dataset.parent))
    dm.prepare_data()
    dm.setup("fit")
    assert dm.resolve_path() == cube_single_dataset


def test_offline_and_absent_is_one_error_with_the_commands(offline, tmp_path):
    # docs/errors.md row 41
    data_dir = tmp_path / "empty"
    dm = OGBenchDataModule(NAME, chunk_size=5, data_dir=str(data_dir))
    with pytest.raises(DatasetNotFoundError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert "\n" not in message
    assert str(data_dir / f"{DATASET}.npz") in message  # the file
    assert f"is not in {data_dir}" in message and "OGBENCH_DATA_DIR" in message  # the directory searched
    assert "Temporary failure in name resolution" in message  # why
    assert f"ogbench.download_datasets(['{DATASET}'], '{data_dir}')" in message  # the fetch command
    assert f"rql-data generate {DATASET} --data-dir {data_dir}" in message  # the local alternative


def test_offline_navigate_dataset_offers_only_the_download(offline, tmp_path):
    # docs/errors.md row 41
    dm = OGBenchDataModule("antmaze-large-navigate-singletask-task1-v0", chunk_size=1, data_dir=str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match="antmaze-large-navigate-v0") as info:
        dm.prepare_data()
    assert "rql-data generate" not in str(info.value)


def test_download_disabled_names_the_commands(tmp_path):
    dm = OGBenchDataModule(NAME, chunk_size=5, data_dir=str(tmp_path), download=False)
    with pytest.raises(DatasetNotFoundError, match="data.download=false") as info:
        dm.prepare_data()
    assert f"rql-data generate {DATASET} --data-dir {tmp_path}" in str(info.value)


def test_sharded_task_looks_for_its_directory(tmp_path, offline):
    """cube-quadruple's 100M data is a shard directory; absent, the error names it and how to get it."""
    dm = config_datamodule(tmp_path, "task=cube-quadruple", f"data.data_dir={tmp_path}")
    assert isinstance(dm, ShardedOGBenchDataModule) and dm.resolve_path() == tmp_path / "cube-quadruple-play-100m-v0"
    with pytest.raises(DatasetNotFoundError) as info:
        dm.prepare_data()
    message = str(info.value)
    assert f"{tmp_path}/cube-quadruple-play-100m-v0 does not exist" in message
    assert "rql-data generate cube-quadruple-play-v0 --shards" in message
    assert "data.data_kind=standard data.dataset=cube-quadruple-play-v0" in message


def test_sharded_task_without_shards_generates_a_single_file_when_asked(tmp_path, monkeypatch):
    """task=cube-quadruple data.generate_if_missing=true: no 100M directory, so the 1M-style file is generated."""
    import rql_lightning.data.ogbench_datamodule as single_file

    calls = []
    monkeypatch.setattr(single_file, "ensure_play_dataset", lambda name, *args, **kwargs: calls.append(name))
    dm = config_datamodule(
        tmp_path, "task=cube-quadruple", f"data.data_dir={tmp_path}", "data.generate_if_missing=true"
    )
    dm.prepare_data()
    assert calls == ["cube-quadruple-play-v0"] and not isinstance(dm, ShardedOGBenchDataModule)
    assert dm.resolve_path().name == "cube-quadruple-play-v0.npz"
