"""`digitrec batch`: archives of real image files -> Parquet, resumable, same answers as predict."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import run_main

from digitrec.errors import DigitrecError

pytest.importorskip("pyarrow")

N = 240  # MNIST test digits written as PNG files


@pytest.fixture
def archive(tmp_path, mnist):
    """A folder of N digit PNGs (dark ink on white, like scans) plus a corrupt one -> (folder, labels)."""
    images, labels = mnist["test"]
    folder = tmp_path / "scans"
    (folder / "b").mkdir(parents=True)
    for i in range(N):
        cv2.imwrite(str(folder / ("b" if i % 2 else "") / f"{i:04d}.png"), 255 - images[i])
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not the rest of a PNG")
    return folder, {str(folder / ("b" if i % 2 else "") / f"{i:04d}.png"): int(labels[i]) for i in range(N)}


def rows_by_path(out) -> dict:
    from digitrec.batch.sink import read_results

    rows = read_results(out).to_pylist()
    by_path = {r["path"]: r for r in rows}
    assert len(by_path) == len(rows), "a path answered twice"
    return by_path


def test_answers_equal_predict(archive, tmp_path, capsys):
    folder, labels = archive
    out = tmp_path / "results.parquet"
    code, _, err = run_main(["batch", str(folder), "--out", str(out), "--workers", "2", "--part-size", "100"], capsys)
    assert code == 1, err  # the corrupt file failed; the others were answered
    assert f"{N + 1} images answered" in err and "1 failed" in err
    assert sorted(p.name for p in out.iterdir()) == [
        "part-000000.parquet",
        "part-000001.parquet",
        "part-000002.parquet",
    ]
    rows = rows_by_path(out)

    code, predicted, _ = run_main(["predict", str(folder), "--json"], capsys)
    predicted = {r["path"]: r for r in json.loads(predicted)}
    assert set(rows) == set(predicted) == set(labels) | {str(folder / "corrupt.png")}
    for path, r in rows.items():
        p = predicted[path]
        assert r["digit"] == p["digit"] and r["uncertain"] == p["uncertain"], path
        assert (r["error"] is None) == (p["error"] is None), path
        if r["confidence"] is not None:
            assert r["confidence"] == pytest.approx(p["confidence"], abs=2e-6)
    assert rows[str(folder / "corrupt.png")]["error"] and rows[str(folder / "corrupt.png")]["digit"] is None
    assert len({r["model"] for r in rows.values()}) == 1 and len(next(iter(rows.values()))["model"]) == 64
    accuracy = np.mean([rows[p]["digit"] == d for p, d in labels.items()])
    assert accuracy >= 0.97


def test_resume_skips_done_and_answers_new(archive, tmp_path):
    from digitrec.batch import run_batch

    folder, labels = archive
    out = tmp_path / "r.parquet"
    first = run_batch([str(folder)], str(out), workers=1, part_size=64)
    assert (first.found, first.skipped, first.answered, first.errors) == (N + 1, 0, N + 1, 1)
    again = run_batch([str(folder)], str(out), workers=1, part_size=64)
    assert (again.skipped, again.answered) == (N + 1, 0)
    images = sorted(folder.rglob("*.png"))
    cv2.imwrite(str(folder / "new.png"), cv2.imread(str(images[0]), cv2.IMREAD_GRAYSCALE))
    third = run_batch([str(folder)], str(out), workers=1, part_size=64)
    assert (third.skipped, third.answered) == (N + 1, 1)
    rows = rows_by_path(out)
    assert len(rows) == N + 2 and rows[str(folder / "new.png")]["digit"] == rows[str(images[0])]["digit"]


def test_a_resume_naming_the_folder_another_way_answers_nothing_twice(archive, tmp_path, monkeypatch):
    # The audit: `batch small` then `batch $PWD/small` gave 26 rows for 13 files.
    from digitrec.batch import run_batch

    folder, _ = archive
    out = tmp_path / "spelled.parquet"
    monkeypatch.chdir(tmp_path)
    first = run_batch(["scans"], str(out), workers=1, part_size=64)
    assert (first.skipped, first.answered) == (0, N + 1)
    for spelling in (str(folder), "./scans", "scans/../scans"):
        again = run_batch([spelling], str(out), workers=1, part_size=64)
        assert (again.skipped, again.answered) == (N + 1, 0), spelling
    again = run_batch([str(folder)], str(out), workers=1, part_size=64, retry_failed=True)
    assert (again.retried, again.answered, again.still_failing) == (1, 1, 1)  # the corrupt one, as first named
    rows = rows_by_path(out)
    assert len(rows) == N + 1 and all(not Path(p).is_absolute() for p in rows)
    # Files first named as a shell glob spells them (./scans/0000.png), then the folder.
    out = tmp_path / "globbed.parquet"
    run_batch(["./scans/0000.png", "./scans/corrupt.png"], str(out), workers=1)
    again = run_batch(["scans"], str(out), workers=1, part_size=64)
    assert (again.skipped, again.answered) == (2, N - 1)
    assert len(rows_by_path(out)) == N + 1


def test_lists_of_paths_and_bad_rows(archive, tmp_path):
    """A .txt, .csv and .parquet list (relative to the list's folder); a text file and a missing
    file are rows with their errors, never the end of the batch."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from digitrec.batch import run_batch
    from digitrec.batch.sources import expand_sources

    folder, labels = archive
    (folder / "notes.txt").write_text("not an image at all\n")
    some = sorted(labels)[:5]
    names = [os.path.relpath(p, folder) for p in some]
    (folder / "list.txt").write_text("# scans to do\n" + "\n".join(names + ["notes.txt", "missing.png"]) + "\n")
    (folder / "list.csv").write_text("id,path\n" + "\n".join(f"{i},{n}" for i, n in enumerate(names)) + "\n")
    pq.write_table(pa.table({"path": some}), folder / "list.parquet")
    wanted = some + [str(folder / "notes.txt"), str(folder / "missing.png")]
    assert expand_sources([str(folder / "list.txt")]) == [os.path.join(folder, n) for n in names] + wanted[5:]
    assert expand_sources([str(folder / "list.csv")]) == [os.path.join(folder, n) for n in names]
    assert expand_sources([str(folder / "list.parquet")]) == some
    assert expand_sources([str(folder / "b" / "000?.png")]) == [
        str(folder / "b" / f"000{i}.png") for i in (1, 3, 5, 7, 9)
    ]
    assert len(expand_sources([str(folder / "**" / "*.png")])) == N + 1

    out = tmp_path / "l.parquet"
    summary = run_batch([str(folder / "list.txt")], str(out), workers=1)
    assert (summary.answered, summary.errors) == (7, 2)
    rows = rows_by_path(out)
    assert [rows[os.path.join(folder, n)]["digit"] for n in names] == [labels[p] for p in some]
    assert "not an image" in rows[str(folder / "notes.txt")]["error"]
    assert rows[str(folder / "missing.png")]["error"]


def test_uris_through_fsspec(archive, tmp_path):
    """An object store as fsspec sees it (its in-memory filesystem stands in for s3:// here):
    a folder, a glob and a list of URIs; a missing object is a row with its error."""
    fsspec = pytest.importorskip("fsspec")
    from digitrec.batch import run_batch
    from digitrec.batch.sources import expand_sources

    folder, labels = archive
    some = sorted(labels)[:4]
    store = fsspec.filesystem("memory")
    for i, path in enumerate(some):
        store.pipe(f"/bucket/scans/{i}.png", Path(path).read_bytes())
    store.pipe("/bucket/list.txt", b"scans/0.png\nscans/gone.png\n")
    try:
        found = expand_sources(["memory://bucket/scans"])
        assert len(found) == 4 and expand_sources(["memory://bucket/scans/*.png"]) == found
        gone = found[0].replace("0.png", "gone.png")
        assert expand_sources(["memory://bucket/list.txt"]) == [found[0], gone]  # spelt as the folder's
        out = tmp_path / "uri.parquet"
        summary = run_batch(["memory://bucket/scans", "memory://bucket/list.txt"], str(out), workers=1)
        assert (summary.found, summary.answered, summary.errors) == (6, 5, 1)  # scans/0.png once
        rows = rows_by_path(out)
        assert [rows[uri]["digit"] for uri in found] == [labels[p] for p in some]
        assert "cannot fetch" in rows[gone]["error"]
    finally:
        store.rm("/bucket", recursive=True)


def test_read_task_equals_recognizer_read(mnist, tmp_path):
    from digitrec import Recognizer
    from digitrec.batch import run_batch

    images, _ = mnist["test"]
    folder = tmp_path / "numbers"
    folder.mkdir()
    for i in range(3):  # three-digit numbers, the digits side by side with a gap
        strip = np.hstack([np.pad(images[3 * i + k], ((4, 4), (6, 6))) for k in range(3)])
        cv2.imwrite(str(folder / f"n{i}.png"), 255 - strip)
    out = tmp_path / "read.parquet"
    summary = run_batch([str(folder)], str(out), task="read", workers=1)
    assert (summary.answered, summary.errors) == (3, 0)
    rows = rows_by_path(out)
    recognizer = Recognizer()
    for path, r in rows.items():
        reading = recognizer.read(path)
        assert r["text"] == reading.text and r["digit"] is None and len(r["text"]) == 3
        assert r["confidence"] == pytest.approx(reading.confidence)


def test_other_task_or_model_refused(archive, tmp_path, capsys):
    folder, _ = archive
    out = tmp_path / "o.parquet"
    run_main(["batch", str(folder / "b"), "--out", str(out), "--workers", "1"], capsys)
    code, _, err = run_main(["batch", str(folder / "b"), "--out", str(out), "--task", "read"], capsys)
    assert code == 1 and "--task predict" in err and "Traceback" not in err
    (tmp_path / "file.parquet").write_text("x")
    code, _, err = run_main(["batch", str(folder), "--out", str(tmp_path / "file.parquet")], capsys)
    assert code == 1 and "is a file" in err
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(["batch", str(tmp_path / "empty"), "--out", str(out)], capsys)
    assert code == 1 and "empty: no images found" in err
    code, _, err = run_main(["batch", str(tmp_path / "typo"), "--out", str(tmp_path / "t.parquet")], capsys)
    assert code == 1 and "typo: no such file or folder" in err and not (tmp_path / "t.parquet").exists()


def test_kill_9_then_resume_loses_nothing(archive, tmp_path):
    """SIGKILL the command (not its workers) once the first part is on disk: its workers go with it,
    no half-written part is left, and a second run answers exactly what is missing."""
    folder, labels = archive
    out = tmp_path / "k.parquet"
    command = [
        sys.executable,
        "-m",
        "digitrec",
        "batch",
        str(folder),
        "--out",
        str(out),
        "--workers",
        "2",
        "--part-size",
        "10",
    ]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "part-000000.parquet").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.005)
    children = _children(proc.pid)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = sorted(p.name for p in out.iterdir() if p.name.startswith("part-"))
    assert 1 <= len(written) < (N + 1) / 10, "the run should be killed midway"
    killed_rows = rows_by_path(out)
    assert len(killed_rows) == 10 * len(written)
    for _ in range(100):  # the workers follow their parent (PR_SET_PDEATHSIG)
        if not any(_alive(pid) for pid in children):
            break
        time.sleep(0.05)
    assert children and not any(_alive(pid) for pid in children)

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and f"{len(killed_rows)} images already in the output" in done.stderr
    rows = rows_by_path(out)  # asserts no path twice
    assert set(rows) == set(labels) | {str(folder / "corrupt.png")}
    assert all(rows[p] == r for p, r in killed_rows.items())


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ray_actors_never_ask_more_than_a_node_has():
    from digitrec.batch.ray_engine import actor_resources

    assert actor_resources([0.0, 4.0, 4.0], None) == (1.0, 8)  # a head with num-cpus 0 takes none
    assert actor_resources([2.0], 5) == (1.0, 2)  # --workers beyond the CPUs would queue
    assert actor_resources([0.5, 2.0], None) == (0.5, 5)  # a 500m pod: half a CPU each, never 1
    with pytest.raises(DigitrecError, match="no CPUs"):
        actor_resources([0.0], None)


def test_a_ray_address_nothing_answers_is_an_error_not_a_hang(tmp_path):
    """Ray retries an unreachable head for ever and ignores Ctrl+C meanwhile: a mistyped
    --address must fail at once with one line (found by a new user's audit: 12 minutes, SIGKILL)."""
    pytest.importorskip("ray.data")
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    image = tmp_path / "in" / "a.png"
    image.parent.mkdir()
    cv2.imwrite(str(image), np.full((28, 28), 255, np.uint8))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    args = [
        "batch",
        str(image.parent),
        "--engine",
        "ray",
        "--address",
        f"127.0.0.1:{port}",
        "--out",
        str(tmp_path / "r.parquet"),
    ]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "digitrec", *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert f"cannot reach Ray at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < 60


def test_an_address_that_never_answers_times_out_and_one_that_answers_passes(tmp_path, monkeypatch):
    import socket

    from digitrec.batch.ray_engine import check_reachable

    with pytest.raises(DigitrecError, match="cannot reach Ray at 192.0.2.1:6379"):
        check_reachable("192.0.2.1:6379", seconds=0.5)  # TEST-NET-1: never routed
    with socket.socket() as live:
        live.bind(("127.0.0.1", 0))
        live.listen()
        port = live.getsockname()[1]
        check_reachable(f"127.0.0.1:{port}")
        check_reachable(f"ray://127.0.0.1:{port}")
    if socket.has_ipv6:
        try:
            live6 = socket.socket(socket.AF_INET6)
            live6.bind(("::1", 0))
        except OSError:
            pass  # no IPv6 loopback here
        else:
            with live6:
                live6.listen()
                check_reachable(f"[::1]:{live6.getsockname()[1]}")
    check_reachable("::1")  # unbracketed IPv6: Ray's own error, at once


def test_auto_after_a_head_that_died_is_an_error_not_a_hang(tmp_path, monkeypatch):
    """'auto' finds the cluster this machine last started in Ray's address file; a head that died
    without `ray stop` leaves it behind, and Ray then retried it for ever (a review's find)."""
    pytest.importorskip("ray")
    import socket

    from digitrec.batch.ray_engine import check_reachable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{port}")
    with pytest.raises(DigitrecError, match=rf"cannot reach Ray at auto \(\S+:{port}, the cluster"):
        check_reachable("auto")
    (tmp_path / "ray" / "ray_current_cluster").unlink()
    check_reachable("auto")  # no cluster: left to Ray, which says so at once


@pytest.mark.slow
def test_ray_engine_gives_identical_answers(archive, tmp_path):
    pytest.importorskip("ray.data")
    from digitrec.batch import run_batch

    folder, _ = archive
    local = run_batch([str(folder)], str(tmp_path / "local.parquet"), workers=2, part_size=100)
    ray = run_batch([str(folder)], str(tmp_path / "ray.parquet"), engine="ray", workers=2, part_size=100)
    assert (ray.answered, ray.errors) == (local.answered, local.errors) == (N + 1, 1)
    assert rows_by_path(tmp_path / "ray.parquet") == rows_by_path(tmp_path / "local.parquet")


def test_batch_never_loads_torch():
    code = (
        "import sys, digitrec.cli.batch, digitrec.batch.local, digitrec.batch.answer, digitrec.batch.sink, "
        "digitrec.batch.sources, digitrec.batch.ray_engine; assert 'torch' not in sys.modules"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_a_big_photo_gets_the_answer_predict_gives_it(tmp_path):
    # batch decodes as `predict` does (640 px); the 320 px decode is `--fast` in both.
    from web_helpers import photo_of_digit

    from digitrec.batch import run_batch
    from digitrec.batch.sink import read_results
    from digitrec.runtime import Recognizer

    photo = tmp_path / "photos" / "seven.jpg"
    photo.parent.mkdir()
    photo.write_bytes(photo_of_digit(7))
    run_batch([str(photo.parent)], str(tmp_path / "out.parquet"), workers=1)
    row = read_results(str(tmp_path / "out.parquet")).to_pylist()[0]
    expected = Recognizer(threads=1).predict(photo)
    assert row["digit"] == expected.digit == 7
    assert abs(row["confidence"] - expected.confidence) < 1e-6


def test_the_table_says_why_an_answer_is_flagged(tmp_path, capsys):
    """The `reason` column: 'no ink' for a blank scan (with its error), 'low confidence' under
    --min-confidence, null when answered; the default threshold is predict's."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from web_helpers import draw_digit

    from digitrec.batch import run_batch
    from digitrec.batch.sink import read_results
    from digitrec.doubt import DEFAULT_MIN_CONFIDENCE

    folder = tmp_path / "scans"
    folder.mkdir()
    cv2.imwrite(str(folder / "seven.png"), draw_digit(7))
    cv2.imwrite(str(folder / "blank.png"), np.full((80, 80), 240, np.uint8))
    (folder / "notes.png").write_text("not an image")

    out = tmp_path / "default.parquet"
    code, _, err = run_main(["batch", str(folder), "--out", str(out), "--workers", "1"], capsys)
    assert code == 1, err
    rows = rows_by_path(out)
    seven, blank, notes = (rows[str(folder / n)] for n in ("seven.png", "blank.png", "notes.png"))
    assert seven["digit"] == 7 and seven["confidence"] >= DEFAULT_MIN_CONFIDENCE
    assert seven["uncertain"] is False and seven["reason"] is None
    assert blank["reason"] == "no ink" and blank["error"].startswith("no ink found") and blank["digit"] is None
    assert notes["reason"] is None and "not an image" in notes["error"]
    assert read_results(out).schema.field("reason").type == pa.string()

    strict = tmp_path / "strict.parquet"
    run_batch([str(folder / "seven.png")], str(strict), workers=1, min_confidence=1.0)
    (row,) = read_results(strict).to_pylist()
    assert row["digit"] is None and row["uncertain"] is True and row["reason"] == "low confidence"
    assert row["confidence"] == pytest.approx(seven["confidence"], abs=1e-6)

    # A part written before the column existed still reads, its reasons null (another path's row:
    # read_results shows one row per path).
    old = pq.read_table(strict / "part-000000.parquet").drop_columns(["reason"])
    pq.write_table(old.set_column(0, "path", pa.array(["other.png"])), strict / "part-000001.parquet")
    assert read_results(strict).column("reason").to_pylist() == ["low confidence", None]


def test_read_with_a_model_missing_the_files_its_card_names_stops_before_any_row(mnist, tmp_path, capsys):
    # The shipped model.onnx copied alone: its card names the reader's digit model beside it. Read
    # would answer every image with the same error, and a rerun with the files back skips them all.
    import shutil

    from digitrec.runtime import default_model_path

    lone = tmp_path / "lone" / "model.onnx"
    lone.parent.mkdir()
    shutil.copy(default_model_path(), lone)
    folder = tmp_path / "numbers"
    folder.mkdir()
    cv2.imwrite(str(folder / "n.png"), 255 - np.hstack([mnist["test"][0][0], mnist["test"][0][1]]))
    out = tmp_path / "read.parquet"
    args = ["batch", str(folder), "--out", str(out), "--task", "read", "--workers", "1", "--model", str(lone)]
    code, _, err = run_main(args, capsys)
    assert code == 1 and "reader's digit model reader_digits.onnx, which is not there" in err
    assert "Traceback" not in err and not out.exists()
    shutil.copy(default_model_path().with_name("reader_digits.onnx"), lone.parent)  # the files together
    code, _, err = run_main(args, capsys)
    assert code == 0 and rows_by_path(out)[str(folder / "n.png")]["text"] is not None


def test_a_read_resume_with_another_digit_scorer_beside_the_same_model_is_refused(mnist, tmp_path, capsys):
    # Readings depend on the files the model's card names, not only on model.onnx: the same model
    # file beside another scorer must not resume (it would skip every path read by the first).
    import shutil

    from digitrec.runtime import default_model_path

    shipped = default_model_path()
    folder = tmp_path / "numbers"
    folder.mkdir()
    cv2.imwrite(str(folder / "n.png"), 255 - np.hstack([mnist["test"][0][0], mnist["test"][0][1]]))
    out = tmp_path / "read.parquet"
    for name, scorer in (("a", shipped.with_name("reader_digits.onnx")), ("b", shipped)):
        (tmp_path / name).mkdir()
        shutil.copy(shipped, tmp_path / name / "model.onnx")  # the same bytes
        shutil.copy(scorer, tmp_path / name / "reader_digits.onnx")
    args = ["batch", str(folder), "--out", str(out), "--task", "read", "--workers", "1", "--model"]
    code, _, err = run_main([*args, str(tmp_path / "a" / "model.onnx")], capsys)
    assert code == 0, err
    code, _, err = run_main([*args, str(tmp_path / "b" / "model.onnx")], capsys)
    assert code == 1 and "holds answers from another model" in err and "Traceback" not in err
    code, _, err = run_main([*args, str(tmp_path / "a" / "model.onnx")], capsys)  # the same three files resume
    assert code == 0, err


def test_a_folder_it_cannot_list_and_a_broken_link_are_rows_not_lost(locked_archive, tmp_path):
    """Nothing in an archive vanishes in silence: a subfolder that cannot be listed and a broken
    link were dropped from the list (the run said all was well); each is now a row with its error."""
    from digitrec.batch import run_batch
    from digitrec.batch.sources import expand_sources

    folder, locked, broken = locked_archive
    listed = [str(folder / "3.png"), str(broken), str(locked), str(folder / "ok" / "7.jpg")]
    assert expand_sources([str(folder)]) == sorted(listed)
    out = tmp_path / "results.parquet"
    summary = run_batch([str(folder)], str(out), workers=1)
    assert (summary.answered, summary.errors) == (4, 2)
    rows = rows_by_path(out)
    assert rows[str(broken)]["error"] == "no such file" and rows[str(broken)]["digit"] is None
    assert rows[str(locked)]["error"] and rows[str(locked)]["digit"] is None
    assert (rows[str(folder / "3.png")]["digit"], rows[str(folder / "ok" / "7.jpg")]["digit"]) == (3, 7)


def test_a_parquet_list_that_is_no_parquet_or_has_no_path_column_of_text_says_which(tmp_path):
    """The three were all "needs a 'path' column", followed by pyarrow's internals over five lines
    for the one that had a column of another name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from digitrec.batch.sources import expand_sources

    pq.write_table(pa.table({"file": ["a.png"], "label": [3]}), tmp_path / "named.parquet")
    (tmp_path / "text.parquet").write_text("path\na.png\n")
    (tmp_path / "empty.parquet").write_bytes(b"")
    pq.write_table(pa.table({"path": [3, 7]}), tmp_path / "numbers.parquet")
    for name, message in (
        ("named", "named.parquet: a Parquet list needs a 'path' column (it has: file, label)"),
        (
            "text",
            "text.parquet: not a Parquet file ("
            "Parquet magic bytes not found in footer. Either the file is corrupted or this is not a parquet file.)",
        ),
        (
            "empty",
            "empty.parquet: not a Parquet file (Parquet file size is 0 bytes)",
        ),
        # numbers where paths go: AttributeError "'int' object has no attribute 'partition'"
        ("numbers", "numbers.parquet: the 'path' column must hold text (file paths or URIs), not int64"),
    ):
        with pytest.raises(DigitrecError) as err:
            expand_sources([str(tmp_path / f"{name}.parquet")])
        assert str(err.value) == str(tmp_path / message)


def test_a_second_run_into_an_out_that_a_run_is_writing_is_refused(tmp_path):
    """Two runs into one --out (the same command started again in another terminal, thinking the
    first had died) numbered their parts alike and wrote over each other's, and the second removed
    the part the first was writing as a killed run's leftover. The second is now refused; once the
    first ends, the same command goes on."""
    import shutil

    from digitrec.batch import run_batch
    from digitrec.batch.sink import ResultSink

    examples = Path(__file__).resolve().parent.parent / "examples"
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(examples / "scan_3.png", folder / "3.png")
    out = tmp_path / "results.parquet"
    first = ResultSink(out, "predict", "0" * 64)  # a run under way, writing its next part:
    writing = out / ".part-000000.parquet.x1y2.part"
    writing.write_bytes(b"half a part")
    with pytest.raises(DigitrecError) as err:
        run_batch([str(folder)], str(out), workers=1)
    assert str(err.value) == (
        f"{out} is being written by another digitrec batch run right now: let it finish (run the same "
        "command again then, to answer what it did not) or give this one another --out"
    )
    assert writing.read_bytes() == b"half a part" and not list(out.glob("part-*"))
    first.close()
    writing.unlink()
    summary = run_batch([str(folder)], str(out), workers=1)
    assert (summary.answered, summary.errors) == (1, 0)
    assert rows_by_path(out)[str(folder / "3.png")]["digit"] == 3
    assert run_batch([str(folder)], str(out), workers=1).skipped == 1  # the lock was let go at the end


def test_a_resume_with_another_threshold_or_fast_is_refused(tmp_path, capsys):
    """--min-confidence empties the digit of an uncertain answer: a resume with another threshold
    (or with --fast added) mixed two meanings of `uncertain` and `digit` in one table, in silence."""
    import shutil

    examples = Path(__file__).resolve().parent.parent / "examples"
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(examples / "scan_3.png", folder / "3.png")
    out = tmp_path / "results.parquet"
    args = ["batch", str(folder), "--out", str(out), "--workers", "1"]
    code, _, err = run_main([*args, "--min-confidence", "0.5"], capsys)
    assert code == 0, err
    shutil.copy(examples / "photo_7.jpg", folder / "7.jpg")
    for more, said in (
        (["--min-confidence", "0.99"], "--min-confidence 0.5, not --min-confidence 0.99"),
        (["--min-confidence", "0.5", "--fast"], "no --fast, not --fast"),
    ):
        code, _, err = run_main([*args, *more], capsys)
        assert code == 1 and f"{out} holds answers given with {said}: resume as the run began" in err, err
    code, _, err = run_main([*args, "--min-confidence", "0.5"], capsys)
    assert code == 0 and "1 images answered" in err and "1 already done" in err, err
    assert rows_by_path(out)[str(folder / "7.jpg")]["digit"] == 7


def test_parts_written_before_settings_were_kept_still_resume(tmp_path):
    import shutil

    from digitrec.batch import run_batch
    from digitrec.batch.sink import ResultSink
    from digitrec.files import file_sha256
    from digitrec.runtime import default_model_path

    examples = Path(__file__).resolve().parent.parent / "examples"
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(examples / "scan_3.png", folder / "3.png")
    out = tmp_path / "results.parquet"
    old = ResultSink(out, "predict", file_sha256(default_model_path()))  # as runs before wrote parts
    old.add([{"path": str(folder / "3.png"), "digit": 3, "confidence": 0.99, "uncertain": False}])
    old.close()
    assert run_batch([str(folder)], str(out), workers=1, min_confidence=0.8).skipped == 1


def test_the_help_names_every_column_of_the_table():
    """--out's help left out the `reason` column."""
    from click.testing import CliRunner

    from digitrec.batch.sink import COLUMNS
    from digitrec.cli import cli

    result = CliRunner().invoke(cli, ["batch", "--help"], terminal_width=400)
    assert f"(one table: {', '.join(COLUMNS)})" in " ".join(result.output.split())


def interrupted_answering(*args, on_start, **kwargs):
    """A stand-in run_batch: Ctrl+C once the inputs are listed and answering has begun."""
    on_start(5, 0)
    raise KeyboardInterrupt


def test_ctrl_c_says_the_answers_are_kept_and_how_to_go_on(tmp_path, monkeypatch, capsys):
    """Ctrl+C printed click's bare "Aborted.": nothing said the parts written were kept. While the
    inputs are still being listed, nothing is answered yet, and it says so."""
    import digitrec.batch

    monkeypatch.setattr(digitrec.batch, "run_batch", interrupted_answering)
    out = tmp_path / "results.parquet"
    code, _, err = run_main(["batch", str(tmp_path), "--out", str(out)], capsys)
    assert code == 130
    assert err == f"Interrupted: the answers so far are kept in {out}; run the same command again to go on.\n"

    def interrupted_listing(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(digitrec.batch, "run_batch", interrupted_listing)
    code, _, err = run_main(["batch", str(tmp_path), "--out", str(out)], capsys)
    assert (code, err) == (
        130,
        "Interrupted while listing the inputs: nothing answered yet; run the same command again.\n",
    )


def test_the_summary_stays_one_line_when_logged(tmp_path, capsys):
    """Piped into a log (cron, CI), rich broke the summary at 80 columns, mid-path."""
    import shutil

    examples = Path(__file__).resolve().parent.parent / "examples"
    folder = tmp_path / "a folder with a long name, as archives have"
    folder.mkdir()
    shutil.copy(examples / "scan_3.png", folder / "3.png")
    out = tmp_path / "results of the long archive.parquet"
    code, _, err = run_main(["batch", str(folder), "--out", str(out), "--workers", "1"], capsys)
    assert code == 0, err
    assert re.fullmatch(rf"1 images answered in [0-9.]+ s \([0-9,]+/s\) -> {re.escape(str(out))}\n", err), err


EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DIGITS = {"drawing_4.png": 4, "mnist_9.png": 9, "scan_3.png": 3, "chalk_2.jpg": 2, "grid_6.jpg": 6, "photo_7.jpg": 7}


@pytest.fixture
def half_copied(tmp_path):
    """A folder of real scans and photos caught while some were still being copied: scan_3.png
    empty, photo_7.jpg and drawing_4.png cut at half their bytes. -> (folder, fix), where fix()
    copies them whole."""
    import shutil

    folder = tmp_path / "inbox"
    folder.mkdir()
    for name in DIGITS:
        shutil.copy(EXAMPLES / name, folder / name)
    (folder / "scan_3.png").write_bytes(b"")
    for name in ("photo_7.jpg", "drawing_4.png"):
        whole = (EXAMPLES / name).read_bytes()
        (folder / name).write_bytes(whole[: len(whole) // 2])

    def fix():
        for name in ("scan_3.png", "photo_7.jpg", "drawing_4.png"):
            shutil.copy(EXAMPLES / name, folder / name)

    return folder, fix


def test_retry_failed_answers_again_exactly_the_files_that_failed(half_copied, tmp_path, capsys):
    """A rerun skipped every failed file as done: the only way to try them again was to delete the
    whole output. --retry-failed answers those again, in the process pool, and nothing else; the
    new rows replace the old, in every reader."""
    import concurrent.futures
    import shutil

    import pyarrow.parquet as pq

    folder, fix = half_copied
    late = folder / "late"  # more than a chunk of files, 0 bytes at first: the retry needs the pool too
    late.mkdir()
    for i in range(64):
        (late / f"{i:02d}.png").write_bytes(b"")
    broken = {str(folder / n) for n in ("scan_3.png", "photo_7.jpg", "drawing_4.png")} | {
        str(p) for p in late.iterdir()
    }
    out = tmp_path / "results.parquet"
    args = ["batch", str(folder), "--out", str(out), "--workers", "2", "--part-size", "1"]
    code, _, err = run_main(args, capsys)
    assert code == 1 and "70 images answered" in err and "67 failed" in err, err
    first = rows_by_path(out)
    assert {p for p, r in first.items() if r["error"]} == broken
    assert first[str(folder / "scan_3.png")]["error"] == "empty file"

    fix()
    for i in range(64):
        shutil.copy(EXAMPLES / "mnist_9.png", late / f"{i:02d}.png")
    code, _, err = run_main(args, capsys)  # without the flag, nothing is redone (as before), but it says how
    assert code == 0 and "0 images answered" in err, err
    assert "70 already done (67 of them failed: --retry-failed answers them again)" in err
    assert rows_by_path(out) == first

    untouched = {
        p.name: p.read_bytes() for p in out.iterdir() if not broken & set(pq.read_table(p)["path"].to_pylist())
    }
    assert len(untouched) == 3  # a part a row each: the parts of the broken files are left empty, removed
    pools = []

    class Pool(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, workers, **kwargs):
            pools.append(workers)
            super().__init__(workers, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(concurrent.futures, "ProcessPoolExecutor", Pool)
        code, _, err = run_main([*args, "--retry-failed"], capsys)
    assert pools == [2]
    assert code == 0 and "67 images answered" in err and "3 already done, 67 retried (0 still failing)" in err, err
    rows = rows_by_path(out)  # one row per path
    expected = {str(folder / n): (d, None) for n, d in DIGITS.items()} | {p.path: (9, None) for p in os.scandir(late)}
    assert {p: (r["digit"], r["error"]) for p, r in rows.items()} == expected
    assert all(rows[p] == r for p, r in first.items() if p not in broken)
    assert pq.read_table(out).num_rows == 70  # pandas, DuckDB... read the folder: the old rows are gone
    assert len(list(out.glob("part-*"))) == 3 + 67
    assert all((out / name).read_bytes() == data for name, data in untouched.items())

    code, _, err = run_main([*args, "--retry-failed"], capsys)
    assert code == 0 and "0 images answered" in err and "0 retried (0 still failing)" in err, err


def test_a_file_still_broken_fails_again_and_keeps_one_row(half_copied, tmp_path):
    from digitrec.batch import run_batch

    folder, fix = half_copied
    out = tmp_path / "results.parquet"
    run_batch([str(folder)], str(out), workers=1, part_size=4)
    fix()
    still = folder / "grid_6.jpg"
    still.write_bytes(still.read_bytes()[:100])  # broken since the first run answered it: not retried
    (folder / "drawing_4.png").write_bytes(b"")  # still being copied
    summary = run_batch([str(folder)], str(out), workers=1, part_size=4, retry_failed=True)
    assert (summary.answered, summary.retried, summary.still_failing, summary.errors) == (3, 3, 1, 1)
    rows = rows_by_path(out)
    assert rows[str(folder / "drawing_4.png")]["error"] == "empty file"
    assert (rows[str(folder / "scan_3.png")]["digit"], rows[str(folder / "photo_7.jpg")]["digit"]) == (3, 7)
    assert rows[str(still)]["digit"] == 6 and rows[str(still)]["error"] is None

    (folder / "drawing_4.png").write_bytes((EXAMPLES / "drawing_4.png").read_bytes())
    again = run_batch([str(folder)], str(out), workers=1, part_size=4, retry_failed=True)
    assert (again.answered, again.retried, again.still_failing) == (1, 1, 0)
    assert rows_by_path(out)[str(folder / "drawing_4.png")]["digit"] == 4


def test_a_retry_killed_before_its_end_reads_the_later_part_and_the_next_run_tidies(half_copied, tmp_path):
    """A retry killed after writing its new rows, before it removed the old ones from their parts:
    both are on disk; the row of the later part counts, and the next run (flag or not) drops the old."""
    import shutil

    import pyarrow.parquet as pq

    from digitrec.batch import run_batch
    from digitrec.batch.sink import read_results

    folder, fix = half_copied
    out = tmp_path / "results.parquet"
    run_batch([str(folder)], str(out), workers=1, part_size=100)
    shutil.copy(out / "part-000000.parquet", tmp_path / "before.parquet")
    fix()
    run_batch([str(folder)], str(out), workers=1, part_size=100, retry_failed=True)
    shutil.copy(tmp_path / "before.parquet", out / "part-000000.parquet")  # as if killed before the tidying
    assert pq.read_table(out).num_rows == 9
    rows = rows_by_path(out)
    assert {p: r["digit"] for p, r in rows.items()} == {str(folder / n): d for n, d in DIGITS.items()}
    assert read_results(out).column("path").to_pylist()[-3:] == sorted(
        str(folder / n) for n in ("drawing_4.png", "photo_7.jpg", "scan_3.png")
    )
    summary = run_batch([str(folder)], str(out), workers=1)
    assert (summary.answered, summary.skipped, summary.skipped_failed) == (0, 6, 0)
    assert pq.read_table(out).num_rows == 6 and rows_by_path(out) == rows


def test_a_later_part_wins_by_its_number_not_its_name(tmp_path):
    """part-1000000 sorts before part-999999 by name; it is the later one."""
    from digitrec.batch.sink import ResultSink, read_results

    out = tmp_path / "results.parquet"
    first = ResultSink(out, "predict", "0" * 64)
    first.next_part = 999_999
    first.add([{"path": "a.png", "error": "empty file"}, {"path": "b.png", "digit": 1, "confidence": 0.99}])
    first.close()
    second = ResultSink(out, "predict", "0" * 64)
    assert (second.next_part, second.failed) == (1_000_000, {"a.png": 999_999})
    second.add([{"path": "a.png", "digit": 8, "confidence": 0.98}])
    second.close()
    assert sorted(p.name for p in out.iterdir()) == ["part-1000000.parquet", "part-999999.parquet"]
    assert {r["path"]: r["digit"] for r in read_results(out).to_pylist()} == {"a.png": 8, "b.png": 1}
    assert ResultSink(out, "predict", "0" * 64).failed == {}


_POOLS: list = []  # the memory pools tests measured with: kept, a buffer they gave may outlive its test


def test_reading_results_holds_the_table_and_little_more(tmp_path):
    """read_results made sure of one row per path by counting the distinct paths of all the rows: a
    hash of every path, 2.4x the table at its peak. Only a path with an error row can have two rows
    (a retry killed before its end), so only those are looked at; a path failed twice still reads once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from digitrec.batch.sink import ResultSink, read_results, schema

    out = tmp_path / "results.parquet"
    sink = ResultSink(out, "predict", "0" * 64, part_size=500)
    error = {0: "empty file", 1: "truncated"}
    sink.add([{"path": f"scans/{i:05d}.png", "digit": i % 10, "error": error.get(i % 100)} for i in range(20_000)])
    sink.close()
    previous = pa.default_memory_pool()
    pool = pa.proxy_memory_pool(previous)  # counts what pyarrow allocates, peak included
    _POOLS.append(pool)
    pa.set_memory_pool(pool)
    try:
        table = read_results(out)
    finally:
        pa.set_memory_pool(previous)
    assert table.num_rows == 20_000
    assert pool.max_memory() < 1.2 * table.nbytes, (pool.max_memory(), table.nbytes)

    # A retry killed before its end: scans/00000 failed again, scans/00001 is answered now.
    again = [{"path": "scans/00000.png", "error": "empty file"}, {"path": "scans/00001.png", "digit": 1}]
    again = [row | {"model": "0" * 64} for row in again]
    pq.write_table(pa.Table.from_pylist(again, schema=schema("predict")), out / "part-000040.parquet")
    rows = read_results(out).to_pylist()
    assert len(rows) == 20_000 and [r["path"] for r in rows[-2:]] == ["scans/00000.png", "scans/00001.png"]
    latest = {r["path"]: (r["digit"], r["error"]) for r in rows}
    assert (latest["scans/00000.png"], latest["scans/00001.png"]) == ((None, "empty file"), (1, None))
    resumed = ResultSink(out, "predict", "0" * 64)
    assert resumed.failed["scans/00000.png"] == 40 and "scans/00001.png" not in resumed.failed
    assert len(resumed.done) == 20_000 and len(resumed.failed) == 399
    resumed.close()  # drops the superseded rows from part 0
    assert pq.read_table(out / "part-000000.parquet").num_rows == 498


def test_retry_failed_without_an_earlier_run_or_with_other_settings_is_refused(half_copied, tmp_path, capsys):
    folder, _ = half_copied
    out = tmp_path / "results.parquet"
    args = ["batch", str(folder), "--out", str(out), "--workers", "1"]
    code, _, err = run_main([*args, "--retry-failed"], capsys)
    assert code == 1 and "Traceback" not in err and not out.exists()
    assert err == f"Error: {out} holds no results of an earlier run to retry: run without --retry-failed first\n"
    run_main([*args, "--min-confidence", "0.5"], capsys)
    for more, said in (
        ([], "holds answers given with --min-confidence 0.5, not --min-confidence 0.93"),
        (["--min-confidence", "0.5", "--fast"], "holds answers given with no --fast, not --fast"),
        (["--min-confidence", "0.5", "--task", "read"], "holds results of --task predict, not read"),
    ):
        code, _, err = run_main([*args, *more, "--retry-failed"], capsys)
        assert code == 1 and said in err and "Traceback" not in err, err
    code, _, err = run_main([*args, "--min-confidence", "0.5", "--retry-failed"], capsys)
    assert code == 1 and "3 retried (3 still failing)" in err, err  # nothing fixed yet


def test_the_ray_engine_is_handed_only_the_failed_paths(half_copied, tmp_path, monkeypatch):
    """Both engines get their paths from run_batch's one plan; Ray itself is not started here."""
    import digitrec.batch.ray_engine
    from digitrec.batch import run_batch
    from digitrec.batch.local import answer_local

    handed = []

    def fake_ray(paths, *, address, **kwargs):
        handed.append(list(paths))
        return answer_local(paths, **kwargs)

    monkeypatch.setattr(digitrec.batch.ray_engine, "answer_ray", fake_ray)
    folder, fix = half_copied
    out = tmp_path / "results.parquet"
    run_batch([str(folder)], str(out), engine="ray", workers=1)
    fix()
    summary = run_batch([str(folder)], str(out), engine="ray", workers=1, retry_failed=True)
    assert handed[1] == [str(folder / n) for n in ("drawing_4.png", "photo_7.jpg", "scan_3.png")]
    assert (summary.retried, summary.still_failing) == (3, 0)
    assert {p: r["digit"] for p, r in rows_by_path(out).items()} == {str(folder / n): d for n, d in DIGITS.items()}


def test_an_out_with_brackets_in_its_name_is_said_as_it_is(tmp_path, monkeypatch, capsys):
    """rich read `[final]` and `[bold]` in a folder's name as markup: the summary said
    '-> scans /results.parquet' and Ctrl+C's line named a folder that does not exist."""
    import shutil

    import digitrec.batch

    examples = Path(__file__).resolve().parent.parent / "examples"
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(examples / "scan_3.png", folder / "3.png")
    out = tmp_path / "scans [final]" / "results [bold].parquet"
    code, _, err = run_main(["batch", str(folder), "--out", str(out), "--workers", "1"], capsys)
    assert code == 0 and err.endswith(f" -> {out}\n"), err

    monkeypatch.setattr(digitrec.batch, "run_batch", interrupted_answering)
    code, _, err = run_main(["batch", str(folder), "--out", str(out)], capsys)
    assert (code, err) == (
        130,
        f"Interrupted: the answers so far are kept in {out}; run the same command again to go on.\n",
    )


def test_a_folder_whose_file_system_takes_no_lock_is_written_unlocked_not_refused(tmp_path, monkeypatch):
    """On NFS, flock on a folder opened read-only fails with EBADF (the emulation's byte-range lock
    needs a file open for writing): every run was refused as if another run were writing there."""
    import errno
    import fcntl
    import shutil

    from digitrec.batch import run_batch

    def no_locks_here(fd, operation):
        raise OSError(errno.EBADF, "Bad file descriptor")

    monkeypatch.setattr(fcntl, "flock", no_locks_here)
    examples = Path(__file__).resolve().parent.parent / "examples"
    folder = tmp_path / "scans"
    folder.mkdir()
    shutil.copy(examples / "scan_3.png", folder / "3.png")
    out = tmp_path / "results.parquet"
    summary = run_batch([str(folder)], str(out), workers=1)
    assert (summary.answered, summary.errors) == (1, 0)
    assert rows_by_path(out)[str(folder / "3.png")]["digit"] == 3


def test_an_out_that_is_a_uri_is_refused_not_made_a_local_folder(tmp_path, capsys, monkeypatch):
    """`--out s3://bucket/results.parquet` (the cluster example of docs/scale.md) wrote a local
    folder named "s3:" and exited 0."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(["batch", str(tmp_path), "--out", "s3://bucket/results.parquet"], capsys)
    assert code == 1 and "must be a local folder" in err and "Traceback" not in err
    assert not (tmp_path / "s3:").exists()
