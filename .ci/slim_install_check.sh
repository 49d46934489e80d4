#!/usr/bin/env bash
# The README's promise: `pip install .` with no extras predicts and reads, and pulls in none of the
# heavy packages. A fresh venv (no system site-packages), a real dependency resolve at the tested
# versions, then the examples predicted and one command that needs an extra refused in one line.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
VENV=$(mktemp -d)/slim
trap 'rm -rf "$(dirname "$VENV")"' EXIT

"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --disable-pip-version-check -q -c constraints.txt .

heavy=$("$VENV/bin/pip" list --format=freeze 2>/dev/null \
        | grep -iE '^(torch|matplotlib|seaborn|fastapi|uvicorn|keras|ray)==' || true)
if [ -n "$heavy" ]; then
    echo "slim install pulled in: $heavy" >&2
    exit 1
fi

# Outside the checkout, so the installed package (not ./src) answers.
cd "$(dirname "$VENV")"
EXAMPLES="$OLDPWD/examples"
"$VENV/bin/digitrec" predict "$EXAMPLES" --json > predict.json
"$VENV/bin/python" - "$EXAMPLES" <<'PY'
import json, pathlib, sys
answers = json.load(open("predict.json"))
images = [p for p in pathlib.Path(sys.argv[1]).iterdir() if p.suffix != ".py"]
assert len(answers) == len(images), (len(answers), len(images))
for a in answers:  # the examples are named <what>_<digit>.<ext>
    want = int(pathlib.Path(a["path"]).stem.rsplit("_", 1)[1])
    assert a["error"] is None and a["digit"] == want, a
print(f"slim install: {len(answers)} examples predicted right")
PY
"$VENV/bin/digitrec" read "$EXAMPLES/grid_6.jpg" > /dev/null

# A command that needs an extra says which, in one line, and exits 1.
if "$VENV/bin/digitrec" serve --port 0 2> serve.err; then
    echo "digitrec serve ran without the serve extra" >&2
    exit 1
fi
# It names the checkout this venv was installed from (no release on PyPI), with the extra.
grep -q "needs the 'serve' extra" serve.err && grep -qF "pip install '$OLDPWD[serve]'" serve.err \
    || { cat serve.err >&2; exit 1; }
echo "slim install: ok (no torch, matplotlib, seaborn, fastapi, keras; serve names its extra)"
