"""Shared fixtures. Every test gets its own empty digitrec cache; tests that need the real MNIST ask
for the `mnist` fixture, which fetches it (once per session) with the product's own code into the
user's real cache."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

# Captured before any test changes the environment: where the real MNIST cache lives.
REAL_ENV = {k: os.environ.get(k) for k in ("XDG_CACHE_HOME", "DIGITREC_DATA_DIR")}
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package), for tests of
    their parts."""
    spec = importlib.util.spec_from_file_location(f"{name}_benchmark", BENCHMARKS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DIGITREC_DATA_DIR", raising=False)
    # Corrections keep 512 MiB free by default; a CI runner's disk may have less than that left.
    # The test of the default reserve removes this.
    monkeypatch.setenv("DIGITREC_COLLECT_RESERVE_MB", "1")
    return tmp_path / "cache"


@pytest.fixture(scope="session")
def real_mnist_env():
    """Environment variables that point digitrec at the real (user) MNIST cache."""
    return {k: v for k, v in REAL_ENV.items() if v is not None}


@pytest.fixture(scope="session")
def mnist(real_mnist_env):
    """{'train': (images, labels), 'test': (images, labels)} of the real MNIST."""
    from digitrec import data

    # The user's cache only while fetching and loading; the context puts the test's own back.
    with pytest.MonkeyPatch.context() as env:
        for k in REAL_ENV:
            env.delenv(k, raising=False)
        for k, v in real_mnist_env.items():
            env.setenv(k, v)
        data.fetch_mnist()
        return {split: data.load_mnist(split) for split in ("train", "test")}


@pytest.fixture
def real_data(mnist, real_mnist_env, monkeypatch):
    """Point the product's own loader at the real MNIST cache (the autouse fixture hides it)."""
    for k, v in real_mnist_env.items():
        monkeypatch.setenv(k, v)
    if "XDG_CACHE_HOME" not in real_mnist_env:
        monkeypatch.delenv("XDG_CACHE_HOME")
    return mnist


# Fixtures that train a model: a test that uses one (or trains in test_train.py) is `slow`.
TRAINING_FIXTURES = {"run_dir", "keras_tutorial"}


def pytest_collection_modifyitems(config, items):
    """Make the tier markers true from what a test uses, so `-m "not mnist and not slow"` can be
    trusted without remembering a decorator: the MNIST fixtures mean `mnist`, training means
    `slow` (the markers written on a test stay as they are)."""
    for item in items:
        uses = set(getattr(item, "fixturenames", ()))  # with the fixtures those fixtures use
        if uses & {"mnist", "real_data"}:
            item.add_marker(pytest.mark.mnist)
            if uses & TRAINING_FIXTURES or item.module.__name__ == "test_train":
                item.add_marker(pytest.mark.slow)


def run_main(args, capsys):
    """The CLI as users run it (errors become `Error: ...` and exit 1), in-process.
    -> (exit code, stdout, stderr)."""
    from digitrec.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(scope="session")
def artifacts_dir():
    """Where tests leave files a person may want to look at (screenshots, reports)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def tiny_mnist(n: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A fake MNIST split: random strokes, labels cycling 0-9."""
    rng = np.random.default_rng(seed)
    images = (rng.random((n, 28, 28)) > 0.8).astype(np.uint8) * 255
    labels = (np.arange(n) % 10).astype(np.uint8)
    return images, labels


@pytest.fixture(scope="module")
def recognizer():
    """The shipped model, loaded once per test module."""
    from digitrec.runtime import Recognizer

    return Recognizer()


@pytest.fixture(scope="module")
def client(recognizer):
    """The web app around `recognizer`, through Starlette's TestClient (lifespan run)."""
    from fastapi.testclient import TestClient
    from web_helpers import LOCAL

    from digitrec.web import create_app

    with TestClient(create_app(recognizer), base_url=LOCAL) as c:
        yield c


def steepest_edge(grey: np.ndarray) -> float:
    """The largest step between neighbouring pixels along the rows: what a blur or a low
    resolution lowers (the soft-scan tests)."""
    return float(np.abs(np.diff(np.asarray(grey, np.float64), axis=1)).max())


def plain_digits(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Upright strokes (1) and rings (0) in MNIST form, for tests that need digits but no data."""
    import cv2

    images = np.zeros((n, 28, 28), np.uint8)
    for k in range(n):
        if k % 2:
            cv2.line(images[k], (14, 4), (14, 23), 255, 3)
        else:
            cv2.ellipse(images[k], (14, 14), (6, 9), 0, 0, 360, 255, 3)
    return images, np.array([1 if k % 2 else 0 for k in range(n)], np.uint8)


@pytest.fixture
def locked_archive(tmp_path, monkeypatch):
    """A folder as archives come: real images (examples/scan_3.png at the top, photo_7.jpg in a
    subfolder), a subfolder this user may not list (`refuse_to_list`), a broken link with an image's
    name and a link back up to the folder. -> (folder, locked subfolder, broken link)."""
    import shutil

    examples = Path(__file__).resolve().parent.parent / "examples"
    folder = tmp_path / "archive"
    (folder / "ok").mkdir(parents=True)
    shutil.copy(examples / "scan_3.png", folder / "3.png")
    shutil.copy(examples / "photo_7.jpg", folder / "ok" / "7.jpg")
    locked = folder / "locked"
    locked.mkdir()
    shutil.copy(examples / "scan_3.png", locked / "3.png")
    broken = folder / "gone.png"
    broken.symlink_to(tmp_path / "deleted.png")
    (folder / "ok" / "loop").symlink_to(folder)
    refuse_to_list(monkeypatch, locked)
    return folder, locked, broken


def refuse_to_list(monkeypatch, folder: Path) -> None:
    """`folder` can no longer be listed: os.scandir refuses it, as the kernel does for a user
    without read permission (tests run as root in CI, where chmod 000 locks nothing)."""
    scandir = os.scandir

    def refusing(path="."):
        if Path(path) == folder:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
