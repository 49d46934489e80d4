"""The examples a trainer draws, kept in its run folder so that a resumed or repeated run does not
draw them again (minutes of CPU for the reader's networks and the rejector)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from digitrec.errors import DataError

T = TypeVar("T")


def cached(
    path: Path,
    made_with: dict[str, int | float | str],
    build: Callable[[], T],
    to_arrays: Callable[[T], dict[str, np.ndarray]],
    from_arrays: Callable[[dict[str, np.ndarray]], T],
    defaults: dict[str, int | float | str] | None = None,
) -> T:
    """The data made with `made_with` (the settings that decide it, by their option names): read from
    `path` (.npz) when it was made with the same, else `build()` and saved there whole or not at all.
    A cache made otherwise is a DataError, never silently reused. `defaults`: what a setting added
    later was before it existed, for caches saved without it."""
    if path.is_file():
        with np.load(path) as f:
            made = {key: f[key].item() if key in f else (defaults or {}).get(key) for key in made_with}
            if made != made_with:
                raise DataError(
                    f"{path} was made with {_as_options(made)}, not {_as_options(made_with)}: "
                    "use another --out, or delete it"
                )
            return from_arrays({key: f[key] for key in f.files if key not in made_with})
    data = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    from digitrec.files import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: savez would add .npz to a name
        np.savez_compressed(f, **to_arrays(data), **made_with)
    return data


def _as_options(values: dict) -> str:
    return " ".join(f"--{key} {value}" for key, value in values.items())
