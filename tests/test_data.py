"""IDX parsing and fetching, with a real local HTTP server standing in for the mirrors."""

from __future__ import annotations

import gzip
import http.server
import threading
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_mnist

from digitrec import data, files, paths
from digitrec.errors import DataError


def test_idx_round_trip():
    images, labels = tiny_mnist(7)
    assert np.array_equal(data.parse_idx(data.encode_idx(images)), images)
    assert np.array_equal(data.parse_idx(data.encode_idx(labels)), labels)
    assert data.parse_idx(data.encode_idx(images)).shape == (7, 28, 28)


def test_idx_rejects_wrong_magic():
    blob = bytearray(data.encode_idx(tiny_mnist(3)[0]))
    blob[2] = 0x0D  # float32 type code, not unsigned byte
    with pytest.raises(DataError, match="bad magic number"):
        data.parse_idx(bytes(blob))


def test_idx_rejects_truncated_and_trailing_bytes():
    blob = data.encode_idx(tiny_mnist(3)[0])
    with pytest.raises(DataError, match="truncated"):
        data.parse_idx(blob[:-1])
    with pytest.raises(DataError, match="trailing"):
        data.parse_idx(blob + b"\0")
    with pytest.raises(DataError, match="too short"):
        data.parse_idx(b"\0\0")


def test_idx_wrong_dimensions_rejected_for_images():
    blob = data.encode_idx(np.zeros((2, 27, 28), np.uint8))
    with pytest.raises(DataError, match=r"\(N, 28, 28\)"):
        data._check_images(data.parse_idx(blob), "x")


# --- fetching -------------------------------------------------------------------------------


class Fixture:
    """Four small IDX files and a FILES table carrying their own hashes."""

    def __init__(self, root: Path):
        train, test = tiny_mnist(30, seed=1), tiny_mnist(10, seed=2)
        arrays = {
            "train-images": train[0],
            "train-labels": train[1],
            "test-images": test[0],
            "test-labels": test[1],
        }
        self.root = root
        self.raw = {k: data.encode_idx(a) for k, a in arrays.items()}
        self.files = {}
        root.mkdir(parents=True, exist_ok=True)
        for key, spec in data.FILES.items():
            gz = gzip.compress(self.raw[key], mtime=0)
            (root / f"{spec.name}.gz").write_bytes(gz)
            self.files[key] = data.MnistFile(spec.name, data.sha256_hex(self.raw[key]), data.sha256_hex(gz))


@pytest.fixture
def fixture_files(tmp_path, monkeypatch):
    fx = Fixture(tmp_path / "served")
    monkeypatch.setattr(data, "FILES", fx.files)
    return fx


class CountingHandler(http.server.SimpleHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self):
        CountingHandler.requests.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(fixture_files):
    CountingHandler.requests = []
    handler = partial(CountingHandler, directory=str(fixture_files.root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def dead_mirror() -> str:
    # A port nothing listens on: connection refused at once.
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/"


def test_fetch_falls_through_dead_mirror_and_caches(server, fixture_files):
    sources = data.fetch_mnist(mirrors=[dead_mirror(), server], use_npm=False)
    assert set(sources) == set(data.FILES)
    assert all(s.startswith(server) for s in sources.values())
    cache = paths.mnist_cache_dir()
    for key, spec in data.FILES.items():
        assert (cache / spec.name).read_bytes() == fixture_files.raw[key]
    assert not list(cache.glob("*.part")), "no temp files left behind"
    images, labels = data.load_mnist("train")
    assert images.shape == (30, 28, 28) and images.dtype == np.uint8
    assert labels.tolist() == [i % 10 for i in range(30)]


def test_cache_is_used_without_network(server):
    data.fetch_mnist(mirrors=[server], use_npm=False)
    n = len(CountingHandler.requests)
    sources = data.fetch_mnist(mirrors=[dead_mirror()], use_npm=False)
    assert len(CountingHandler.requests) == n, "second fetch must not touch the network"
    assert set(sources) == set(data.FILES)


def test_wrong_hash_is_rejected(server, fixture_files, monkeypatch):
    bad = dict(fixture_files.files)
    spec = bad["train-labels"]
    bad["train-labels"] = data.MnistFile(spec.name, "0" * 64, spec.gz_sha256)
    monkeypatch.setattr(data, "FILES", bad)
    with pytest.raises(DataError) as err:
        data.fetch_mnist(mirrors=[server], use_npm=False)
    message = str(err.value)
    assert "SHA-256 mismatch" in message and "--data-dir" in message
    assert not (paths.mnist_cache_dir() / spec.name).exists(), "a bad file must never be cached"


def test_corrupt_cache_is_fetched_again(server, fixture_files):
    data.fetch_mnist(mirrors=[server], use_npm=False)
    cached = paths.mnist_cache_dir() / data.FILES["test-images"].name
    cached.write_bytes(cached.read_bytes()[:-10])
    data.fetch_mnist(mirrors=[server], use_npm=False)
    assert cached.read_bytes() == fixture_files.raw["test-images"]


def test_interrupted_write_leaves_no_file(tmp_path, monkeypatch):
    target = tmp_path / "file"

    def boom(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(files.os, "fsync", boom)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(target, b"x" * 100)
    assert list(tmp_path.iterdir()) == []


def test_data_dir_with_raw_and_gz_files(fixture_files, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    for i, (key, spec) in enumerate(data.FILES.items()):
        if i % 2:
            (folder / spec.name).write_bytes(fixture_files.raw[key])
        else:
            (folder / f"{spec.name}.gz").write_bytes(gzip.compress(fixture_files.raw[key]))
    sources = data.fetch_mnist(folder, mirrors=[], use_npm=False)
    assert all("data dir" in s for s in sources.values())
    assert data.load_mnist("test")[0].shape == (10, 28, 28)


def test_a_raw_file_cut_short_does_not_hide_the_whole_gz_beside_it(fixture_files, tmp_path):
    """`gunzip -k` stopped halfway leaves a short raw file beside the .gz: only the raw file was
    tried, and with no network the fetch failed though the folder held every byte."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for key, spec in data.FILES.items():
        (folder / f"{spec.name}.gz").write_bytes(gzip.compress(fixture_files.raw[key]))
        (folder / spec.name).write_bytes(fixture_files.raw[key][: len(fixture_files.raw[key]) // 2])
    sources = data.fetch_mnist(folder, mirrors=[], use_npm=False)
    assert sources == {key: f"data dir {folder}" for key in data.FILES}
    for key, spec in data.FILES.items():
        assert (paths.mnist_cache_dir() / spec.name).read_bytes() == fixture_files.raw[key]


def test_every_source_failing_says_what_was_tried(fixture_files):
    with pytest.raises(DataError) as err:
        data.fetch_mnist(mirrors=[dead_mirror()], use_npm=False)
    message = str(err.value)
    assert "Tried" in message and "127.0.0.1" in message and "cache" in message


def broken_gzip(raw: bytes) -> bytes:
    """A .gz with a valid header whose deflate data is damaged: zlib, not gzip, notices."""
    gz = bytearray(gzip.compress(raw, mtime=0))
    gz[12:40] = bytes(28)
    return bytes(gz)


def test_a_gzip_with_broken_data_is_a_bad_source_and_the_next_is_tried(server, fixture_files, tmp_path):
    import zlib

    spec = data.FILES["train-images"]
    bad = broken_gzip(fixture_files.raw["train-images"])
    with pytest.raises(zlib.error):
        gzip.decompress(bad)  # what the old code let through
    mirror = tmp_path / "broken-mirror"
    mirror.mkdir()
    (mirror / f"{spec.name}.gz").write_bytes(bad)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{spec.name}.gz").write_bytes(bad)
    # data dir and first mirror broken, second mirror good: fetched from the second
    sources = data.fetch_mnist(folder, mirrors=[mirror.as_uri() + "/", server], use_npm=False)
    assert sources["train-images"].startswith(server)
    assert (paths.mnist_cache_dir() / spec.name).read_bytes() == fixture_files.raw["train-images"]


def test_only_broken_gzips_end_in_a_clear_error(fixture_files, tmp_path):
    spec = data.FILES["train-images"]
    mirror = tmp_path / "broken-mirror"
    mirror.mkdir()
    (mirror / f"{spec.name}.gz").write_bytes(broken_gzip(fixture_files.raw["train-images"]))
    with pytest.raises(DataError) as err:
        data.fetch_mnist(mirrors=[mirror.as_uri() + "/"], use_npm=False)
    assert "corrupt gzip data" in str(err.value) and "Tried" in str(err.value)


def test_a_broken_file_in_the_data_dir_is_named_once_not_also_said_to_be_missing(fixture_files, tmp_path):
    """The error's list of what was tried said of the same folder "corrupt gzip data" and then
    "not there", which sent the user looking for a missing file."""
    spec = data.FILES["train-images"]
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / f"{spec.name}.gz").write_bytes(broken_gzip(fixture_files.raw["train-images"]))
    with pytest.raises(DataError) as err:
        data.fetch_mnist(folder, mirrors=[dead_mirror()], use_npm=False)
    tried = [line for line in str(err.value).splitlines() if line.startswith(f"  - data dir {folder}")]
    assert len(tried) == 1 and "corrupt gzip data" in tried[0], tried


def test_a_cache_that_cannot_be_written_says_how_to_give_it_one(fixture_files, tmp_path, monkeypatch):
    """A read-only home (a container's): the error named the file it could not write and stopped
    there; every command reads MNIST from the cache, so it now says how to move the cache."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for key, spec in data.FILES.items():
        (folder / spec.name).write_bytes(fixture_files.raw[key])
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    with pytest.raises(DataError) as err:
        data.fetch_mnist(folder, mirrors=[], use_npm=False)
    assert str(err.value) == (
        f"cannot write {paths.mnist_cache_dir() / data.FILES['train-images'].name}: {blocked} is a file, not a "
        "folder. MNIST is read from a cache folder: set XDG_CACHE_HOME to a folder you can write"
    )


@pytest.mark.parametrize("value", ["", "cache", "./cache"])
def test_a_relative_or_empty_xdg_cache_home_is_ignored(value, monkeypatch, tmp_path):
    """XDG_CACHE_HOME=cache put the cache, and a fresh MNIST download, in each folder a command was
    run from; the XDG spec says to ignore a relative path."""
    monkeypatch.setenv("XDG_CACHE_HOME", value)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert paths.mnist_cache_dir() == tmp_path / "home" / ".cache" / "digitrec" / "mnist"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert paths.mnist_cache_dir() == tmp_path / "xdg" / "digitrec" / "mnist"


def test_a_data_dir_file_that_fails_its_hash_is_said_to_be_replaced(fixture_files, tmp_path, capsys):
    """`evaluate --data-dir` took the cache's copy in place of the user's damaged one without a
    word; only `data fetch` said "rejected". Now loading says it too, once."""
    good, bad = tmp_path / "good", tmp_path / "bad"
    for folder in (good, bad):
        folder.mkdir()
        for key, spec in data.FILES.items():
            (folder / spec.name).write_bytes(fixture_files.raw[key])
    data.fetch_mnist(good, mirrors=[], use_npm=False)  # the cache holds the right files
    capsys.readouterr()
    spec = data.FILES["test-labels"]
    damaged = bytearray(fixture_files.raw["test-labels"])
    damaged[-1] ^= 1
    (bad / spec.name).write_bytes(bytes(damaged))
    images, labels = data.load_mnist("test", bad)
    assert labels.tobytes() == fixture_files.raw["test-labels"][8:]
    warnings = [line for line in capsys.readouterr().err.splitlines() if "rejected" in line]
    assert len(warnings) == 1 and spec.name in warnings[0] and "wrong SHA-256" in warnings[0], warnings
