"""`rql-data download`: OGBench's 100M shard layout fetched over real HTTP from a loopback server, resumable,
and never a partial or corrupt file under a dataset's name."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rql_lightning.cli.data import main as rql_data
from rql_lightning.data.dataset_checks import DownloadError
from rql_lightning.data.download import download_dataset, official_files
from rql_lightning.data.generate import generate_play_dataset
from rql_lightning.data.ogbench_datamodule import ShardedOGBenchDataModule

NAME = "cube-single-play-singletask-task1-v0"
DATASET = "cube-single-play-100m-v0"  # published as <url>/<DATASET>/cube-single-play-v0-NNN[-val].npz
SHARDS = 2


class Publisher(BaseHTTPRequestHandler):
    """Serves ``server.files`` with HTTP Range; ``server.cut[name] = n`` sends n bytes of the next answer then hangs
    up (Content-Length announcing the whole); ``server.seen`` records (name, Range header) per request."""

    def do_GET(self) -> None:
        name = self.path.lstrip("/")
        data, asked = self.server.files.get(name), self.headers.get("Range")
        self.server.seen.append((name, asked))
        if data is None:
            self.send_error(404)
            return
        start = int(asked.removeprefix("bytes=").rstrip("-")) if asked else 0
        if start >= len(data) and asked:
            self.send_error(416)
            return
        body = data[start:]
        self.send_response(206 if asked else 200)
        if asked:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: self.server.cut.pop(name, len(body))])

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> dict[str, bytes]:
    """A small shard set under the names OGBench publishes a 100M dataset with."""
    folder = generate_play_dataset(
        "cube-single-play-v0", tmp_path_factory.mktemp("src") / DATASET, 400, progress=False, num_shards=SHARDS,
        max_episode_steps=100,
    )  # fmt: skip
    files = {name: (folder.parent / name).read_bytes() for name in official_files(DATASET, SHARDS)}
    assert len(files) == 2 * SHARDS
    return files


@pytest.fixture
def server(published):
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Publisher)
    httpd.files, httpd.cut, httpd.seen = dict(published), {}, []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_downloads_the_layout_training_reads(server, published, tmp_path, capsys):
    data_dir = tmp_path / "data"
    argv = ["download", DATASET, "--data-dir", str(data_dir), "--shards", str(SHARDS), "--base-url", server.url]
    assert rql_data([*argv, "--no-progress"]) == 0
    assert f"data.dataset={DATASET} data.data_dir={data_dir}" in capsys.readouterr().out
    assert sorted(p.relative_to(data_dir).as_posix() for p in data_dir.rglob("*")) == sorted([DATASET, *published])
    assert all((data_dir / name).read_bytes() == data for name, data in published.items())
    dm = ShardedOGBenchDataModule(NAME, chunk_size=5, batch_size=16, data_dir=str(data_dir), dataset=DATASET)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.shards.shards) == SHARDS and next(iter(dm.make_stream(0, 0))).observations.shape == (16, 28)
    dm.teardown()
    requests = len(server.seen)
    download_dataset(DATASET, data_dir, base_url=server.url, shards=SHARDS, progress=False)
    assert len(server.seen) == requests  # complete files are not fetched again


def test_an_interrupted_download_resumes_where_it_stopped(server, published, tmp_path, capsys):
    # docs/errors.md row 52c
    """docs/errors.md row 52c: the connection drops mid-file; the .part is kept and the next run asks for the rest."""
    data_dir, first = tmp_path / "data", official_files(DATASET)[0]
    server.cut[first] = 1000
    argv = ["download", DATASET, "--data-dir", str(data_dir), "--shards", "1", "--base-url", server.url]
    with pytest.raises(SystemExit) as stopped:
        rql_data([*argv, "--no-progress"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"error: downloading {server.url}/{first} stopped at 1000 of")
    assert "run the same command again to resume" in err
    assert not (data_dir / first).exists() and (data_dir / f"{first}.part").stat().st_size == 1000
    assert rql_data([*argv, "--no-progress"]) == 0
    assert (first, "bytes=1000-") in server.seen
    assert (data_dir / first).read_bytes() == published[first] and not list(data_dir.rglob("*.part"))


def test_a_corrupt_file_is_refused_and_not_kept(server, tmp_path):
    """docs/errors.md row 52c: a file of the announced length that is not an .npz never gets the dataset's name."""
    data_dir, first = tmp_path / "data", official_files(DATASET)[0]
    server.files[first] = b"<html>502 Bad Gateway</html>" * 100
    with pytest.raises(DownloadError, match="not an OGBench dataset") as info:
        download_dataset(DATASET, data_dir, base_url=server.url, shards=1, progress=False)
    assert str(data_dir / first) in str(info.value)
    assert not (data_dir / first).exists() and not list(data_dir.rglob("*.part"))


def test_a_part_longer_than_the_file_starts_over(server, published, tmp_path):
    """A stale .part the server cannot continue (HTTP 416) is discarded, never completed into a wrong file."""
    data_dir, first = tmp_path / "data", official_files(DATASET)[0]
    (data_dir / DATASET).mkdir(parents=True)
    (data_dir / f"{first}.part").write_bytes(b"x" * (len(published[first]) + 10))
    download_dataset(DATASET, data_dir, base_url=server.url, shards=1, progress=False)
    assert (data_dir / first).read_bytes() == published[first]


def test_an_unknown_dataset_is_one_line(server, tmp_path):
    with pytest.raises(DownloadError, match="answered HTTP 404"):
        download_dataset("cube-nope-play-100m-v0", tmp_path, base_url=server.url, shards=1, progress=False)
