"""Where digitrec keeps user data. One place decides, so tests can point it at a temp dir."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/digitrec`, default `~/.cache/digitrec`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digitrec"


def mnist_cache_dir() -> Path:
    return cache_root() / "mnist"


def user_data_dir() -> Path | None:
    """A folder of MNIST files the user points at with DIGITREC_DATA_DIR (the --data-dir flag wins)."""
    value = os.environ.get("DIGITREC_DATA_DIR")
    return Path(value).expanduser() if value else None


def package_dir() -> Path:
    return Path(__file__).resolve().parent


def assets_dir() -> Path:
    """Files shipped inside the package: the default model and its card."""
    return package_dir() / "assets"


def configs_dir() -> Path:
    """Training recipes (TOML); `configs/` at the repository root links here."""
    return package_dir() / "configs"
