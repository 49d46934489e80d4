"""Where digitrec keeps user data. One place decides, so tests can point it at a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

# A run folder (`digitrec train --out runs/NAME`) holds these. Named here, not in the torch-only
# checkpoint module, so that finding a run's files (evaluate, export, the trainers) imports no torch.
CHECKPOINT_NAME = "checkpoint.pt"  # the weights and their metadata, written atomically every epoch
CHECKPOINT_SUFFIXES = (".pt", ".pth")  # PyTorch files: evaluate and export read them, the runtime cannot
RUN_FOLDER_MODELS = (CHECKPOINT_NAME, "model.onnx")  # what a run folder holds to evaluate, in order
METRICS_NAME = "metrics.jsonl"  # one JSON row per epoch
CONFIG_NAME = "config.json"  # the resolved training config
# The digit-model recipes, configs/NAME.toml: named here, where the CLI can read them without torch.
RECIPES = ("mlp", "fast", "cnn", "best", "cnn_mix", "cnn_distill")


def cache_root() -> Path:
    """`$XDG_CACHE_HOME/digitrec`, default `~/.cache/digitrec`. A relative XDG_CACHE_HOME is
    ignored, as the XDG spec says: it would put a cache (and a fresh MNIST download) in every
    folder a command is run from."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "digitrec"


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
