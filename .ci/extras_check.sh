#!/usr/bin/env bash
# Each pip extra works on its own: for every extra, a fresh venv (no system site-packages), a real
# non-editable install of `.[EXTRA]` at the tested versions, one real command that needs the extra,
# its result checked, and none of the other extras' heavy packages pulled in.
# EXTRAS="report serve train batch keras ray" picks which (keras and ray are big: not by default).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
EXTRAS=${EXTRAS:-report serve train batch}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
IMAGES=$(find "$ROOT/examples" -maxdepth 1 -type f ! -name '*.py' | wc -l)

# The packages each extra brings; every other extra's are forbidden in its venv.
declare -A OWN=(
    [report]="matplotlib seaborn"
    [serve]="fastapi uvicorn python-multipart fastapi-offline"
    [train]="torch onnx"
    [keras]="keras torch onnx"
    [batch]="pyarrow"
    [ray]="ray pyarrow"
)
HEAVY="torch onnx matplotlib seaborn fastapi uvicorn fastapi-offline keras ray pyarrow"

fail() { echo "FAIL: $*"; exit 1; }

# The venv's packages, one normalised name a line.
installed() { "$1/bin/pip" list --format=freeze 2>/dev/null | sed 's/==.*//' | tr 'A-Z' 'a-z' | tr '_.' '--'; }

# A child process still running (a zombie, exited but not waited for, is not).
running() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null || true); [ -n "$st" ] && [[ "$st" != Z* ]]; }

check_packages() {  # venv extra
    local names pkg
    names=$(installed "$1")
    for pkg in ${OWN[$2]}; do
        grep -qx "$pkg" <<<"$names" || fail "$pkg not installed by .[$2]"
    done
    for pkg in $HEAVY; do
        [[ " ${OWN[$2]} " == *" $pkg "* ]] && continue
        grep -qx "$pkg" <<<"$names" && fail ".[$2] pulled in $pkg (another extra's package)"
    done
    return 0
}

# Each run_E: in its own folder outside the checkout (the installed package answers, not ./src);
# prints the one-line summary of what it checked as its last line.

run_report() {
    "$VENV/bin/digitrec" data fetch > /dev/null
    "$VENV/bin/digitrec" data explore --out explore
    local pngs
    pngs=$(find explore -name '*.png' -size +1k | wc -l)
    [ "$pngs" -gt 0 ] || fail "data explore wrote no PNGs"
    "$VENV/bin/python" -c '
import pathlib, sys
for p in pathlib.Path("explore").glob("*.png"):
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p
'
    echo "digitrec data explore: $pngs PNGs"
}

run_serve() {
    # --port 0: the server takes a free port and says which on stderr. setsid: its own process
    # group, so stopping it stops any worker it started.
    setsid "$VENV/bin/digitrec" serve --host 127.0.0.1 --port 0 --log-level warning 2> serve.err &
    local pid=$! port="" i
    trap 'kill -- -'"$pid"' 2>/dev/null || true' EXIT
    for i in $(seq 120); do
        port=$(grep -oE 'http://127\.0\.0\.1:[0-9]+/' serve.err | grep -oE '[0-9]+/$' | tr -d / || true)
        [ -n "$port" ] && break
        running "$pid" || { cat serve.err; fail "digitrec serve exited before listening"; }
        sleep 0.5
    done
    [ -n "$port" ] || { cat serve.err; fail "digitrec serve did not say its port within 60 s"; }
    "$VENV/bin/python" - "$port" "$ROOT/examples" <<'PY' || { echo "--- serve.err:"; tail -n 20 serve.err; fail "HTTP checks failed"; }
import json, pathlib, sys, time, urllib.error, urllib.request, uuid
base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 60  # the port is bound before uvicorn starts listening on it
while True:
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=30) as r:
            assert r.status == 200, r.status
            health = json.load(r)
        break
    except urllib.error.URLError as exc:
        if not isinstance(exc.reason, ConnectionRefusedError) or time.monotonic() > deadline:
            raise
        time.sleep(0.5)
assert health["status"] == "ok", health
images = sorted(p for p in pathlib.Path(sys.argv[2]).iterdir() if p.suffix != ".py")
for path in images:  # the examples are named <what>_<digit>.<ext>
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{path.name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + "/v1/predict", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=60) as r:
        assert r.status == 200, (path.name, r.status)
        (answer,) = json.load(r)["predictions"]
    want = int(path.stem.rsplit("_", 1)[1])
    assert answer.get("digit") == want, (path.name, answer)
print(f"{len(images)} images")
PY
    kill -- -"$pid"
    for i in $(seq 40); do running "$pid" || break; sleep 0.25; done
    running "$pid" && fail "digitrec serve still running 10 s after SIGTERM"
    wait "$pid" || true
    trap - EXIT
    echo "digitrec serve: /healthz 200, POST /v1/predict right on $IMAGES examples, stopped"
}

run_train() {
    "$VENV/bin/digitrec" data fetch > /dev/null
    "$VENV/bin/digitrec" train --recipe fast --limit 2000 --epochs 1 --device cpu --out run --json > train.out
    local acc
    acc=$(tail -n 1 train.out | "$VENV/bin/python" -c '
import json, sys
acc = json.loads(sys.stdin.read())["test_accuracy"]
assert 0.1 < acc <= 1, acc  # better than chance after one epoch on 2,000 images
print(f"{acc:.3f}")
') || { tail -n 5 train.out; fail "no JSON line with a test_accuracy above chance"; }
    echo "digitrec train --recipe fast --limit 2000 --epochs 1: test_accuracy $acc"
}

check_parquet() {  # folder engine
    "$VENV/bin/python" - "$1" "$IMAGES" <<'PY'
import pathlib, sys
import pyarrow.parquet as pq
rows = pq.read_table(sys.argv[1]).to_pylist()
assert len(rows) == int(sys.argv[2]), (len(rows), sys.argv[2])
for row in rows:
    want = int(pathlib.Path(row["path"]).stem.rsplit("_", 1)[1])
    assert row["error"] is None and row["digit"] == want, row
PY
}

run_batch() {
    "$VENV/bin/digitrec" batch "$ROOT/examples" --out results.parquet
    check_parquet results.parquet
    echo "digitrec batch: $IMAGES rows, all right"
}

run_ray() {
    # Ray's session files under $WORK (removed at the end), not /tmp/ray.
    RAY_TMPDIR=$WORK/ray "$VENV/bin/digitrec" batch "$ROOT/examples" --engine ray --workers 1 --out results.parquet
    check_parquet results.parquet
    echo "digitrec batch --engine ray: $IMAGES rows, all right"
}

run_keras() {
    # A small untrained Keras 3 model saved as .keras, converted to ONNX, then used to predict.
    KERAS_BACKEND=torch "$VENV/bin/python" -c '
import keras
keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")]).save("tiny.keras")
'
    "$VENV/bin/digitrec" export tiny.keras --out tiny.onnx > /dev/null
    [ -s tiny.onnx ] || fail "digitrec export wrote no tiny.onnx"
    "$VENV/bin/digitrec" predict "$ROOT/examples/mnist_9.png" --model tiny.onnx --json > predict.json
    "$VENV/bin/python" -c '
import json
(a,) = json.load(open("predict.json"))
assert a["error"] is None and a["digit"] in range(10), a
'
    echo "digitrec export tiny.keras -> ONNX, predict with it: a digit"
}

status=0
for extra in $EXTRAS; do
    declare -F "run_$extra" > /dev/null || { echo "extra $extra: FAILED: no check for it"; status=1; continue; }
    VENV=$WORK/$extra/venv
    mkdir -p "$WORK/$extra/run"
    log=$WORK/$extra/log
    start=$SECONDS
    # set +e around, -e inside: a subshell in an `if` or `||` would run with -e switched off.
    set +e
    (
        set -e
        "$PYTHON" -m venv "$VENV"
        "$VENV/bin/pip" install --disable-pip-version-check -q -c constraints.txt "$ROOT[$extra]" \
            || fail "pip install .[$extra] failed"
        check_packages "$VENV" "$extra"
        installed_at=$SECONDS
        cd "$WORK/$extra/run"
        "run_$extra"
        echo "TIMES $((installed_at - start)) $((SECONDS - installed_at))"
    ) > "$log" 2>&1
    rc=$?
    set -e
    if [ "$rc" -eq 0 ]; then
        read -r _ t_install t_run < <(grep '^TIMES ' "$log" | tail -n 1)
        what=$(grep -v '^TIMES ' "$log" | tail -n 1)
        echo "extra $extra: OK ($what, $((SECONDS - start)) s: install ${t_install} s, command ${t_run} s)"
    else
        # pip's warnings about this machine's local indexes are noise here.
        grep -vE '^(WARNING: Location .* is ignored|[[:space:]]*$)' "$log" > "$log.short" || true
        reason=$(grep '^FAIL: ' "$log.short" | tail -n 1 | sed 's/^FAIL: //' || true)
        last=$(grep -v '^FAIL: ' "$log.short" | tail -n 1 || true)
        echo "extra $extra: FAILED: ${reason:-exit $rc: ${last:-no output}}"
        sed 's/^/    /' "$log.short" | tail -n 15 >&2
        status=1
    fi
    rm -rf "$WORK/$extra"  # one venv at a time on disk
done
exit "$status"
