"""Check that the built wheel and sdist carry digitrec's package data: the shipped models, the web page
and the recipes (a missing package-data pattern installs a digitrec that cannot predict).

    python .ci/check_dist.py dist/      # after `python -m build --outdir dist .`
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "digitrec"
# The package data (pyproject.toml's [tool.setuptools.package-data]) and the patterns that must match.
DATA = {"assets": "*.onnx", "web/static": "*", "configs": "*.toml"}


def expected() -> list[str]:
    """Paths inside the package, e.g. 'digitrec/assets/model.onnx', as the source tree has them."""
    found = [f"digitrec/{path.relative_to(PACKAGE).as_posix()}"
             for folder, pattern in DATA.items() for path in sorted((PACKAGE / folder).glob(pattern))
             if path.is_file()]
    if not any(p.endswith("/model.onnx") for p in found):
        sys.exit("the source tree has no digitrec/assets/model.onnx: run this from a checkout")
    return found


def main(dist: Path) -> int:
    wheels, sdists = sorted(dist.glob("digitrec-*.whl")), sorted(dist.glob("digitrec-*.tar.gz"))
    if len(wheels) != 1 or len(sdists) != 1:
        print(f"expected one wheel and one sdist in {dist}, found {[p.name for p in wheels + sdists]}")
        return 1
    with zipfile.ZipFile(wheels[0]) as wheel:
        in_wheel = set(wheel.namelist())
    with tarfile.open(sdists[0]) as sdist:
        # 'digitrec-0.1.0/src/digitrec/assets/model.onnx' -> 'digitrec/assets/model.onnx'
        in_sdist = {name.split("/src/", 1)[1] for name in sdist.getnames() if "/src/" in name}
    missing = [f"{kind}: {path}" for kind, names in (("wheel", in_wheel), ("sdist", in_sdist))
               for path in expected() if path not in names]
    for line in missing:
        print(f"missing from the {line}")
    if not missing:
        print(f"ok: {wheels[0].name} and {sdists[0].name} carry all {len(expected())} data files")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1] if len(sys.argv) > 1 else "dist")))
