"""`digitrec finetune` (digitrec.tune): the user's data read and prepared as predict does, the
shipped model rebuilt in PyTorch from its ONNX weights, a real tiny run, and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import refuse_to_list

from digitrec.errors import DataError


def paper(digit28: np.ndarray) -> np.ndarray:
    """An MNIST digit as a user's scan: dark ink on light paper, with a margin."""
    return np.pad(255 - digit28, 10, constant_values=255)


@pytest.fixture(scope="module")
def digit_files(mnist, tmp_path_factory):
    """40 MNIST test digits (4 per class) written as PNG files, as a folder 0..9 and as a CSV."""
    images, labels = mnist["test"]
    root = tmp_path_factory.mktemp("mine")
    rows = ["path,label"]
    for digit in range(10):
        (root / "folder" / str(digit)).mkdir(parents=True)
        for k, i in enumerate(np.flatnonzero(labels == digit)[:4]):
            cv2.imwrite(str(root / "folder" / str(digit) / f"{k}.png"), paper(images[i]))
            # half the CSV's paths relative to its folder, half absolute
            path = root / "folder" / str(digit) / f"{k}.png"
            rows.append(f"{path if k % 2 else path.relative_to(root)},{digit}")
    (root / "digits.csv").write_text("\n".join(rows) + "\n")
    return root


def test_csv_and_folder_forms_list_the_same_examples(digit_files):
    from digitrec.tune.data import list_examples

    from_csv = list_examples([digit_files / "digits.csv"])
    from_folder = list_examples(digit_files / "folder")
    assert len(from_csv) == len(from_folder) == 40
    assert sorted((e.path.resolve(), e.label) for e in from_csv) == sorted((e.path, e.label) for e in from_folder)
    assert all(e.path.is_file() for e in from_csv)


def test_a_digits_subfolders_are_read_too_and_hidden_files_are_not(tmp_path):
    """7/phone/ and 7/scans/: the images in them were left out ("only 0 usable image(s)")."""
    import shutil

    from digitrec.tune.data import Example, list_examples

    examples = Path(__file__).resolve().parent.parent / "examples"
    for place, name in (("3", "scan_3.png"), ("3/phone", "scan_3.png"), ("7/scans/2024", "photo_7.jpg")):
        (tmp_path / place).mkdir(parents=True, exist_ok=True)
        shutil.copy(examples / name, tmp_path / place / name)
    (tmp_path / "7" / ".thumbnails").mkdir()
    (tmp_path / "7" / ".thumbnails" / "photo_7.jpg").write_bytes(b"a viewer's cache")
    (tmp_path / "7" / ".DS_Store").write_bytes(b"\0")
    # what Windows and unzip leave: every folder copied from Windows failed on its Thumbs.db
    (tmp_path / "3" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / "7" / "desktop.ini").write_text("[.ShellClassInfo]\n")
    (tmp_path / "__MACOSX" / "3").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "3" / "._scan_3.png").write_bytes(b"\0")
    assert list_examples(tmp_path) == [
        Example(tmp_path / "3" / "phone" / "scan_3.png", 3),
        Example(tmp_path / "3" / "scan_3.png", 3),
        Example(tmp_path / "7" / "scans" / "2024" / "photo_7.jpg", 7),
    ]


def test_a_digits_subfolder_it_cannot_list_is_refused_by_name_not_left_out(tmp_path, monkeypatch):
    """7/scans/ that this user may not list: its sevens were left out in silence (the model was
    tuned on fewer than the user gave)."""
    import shutil

    from digitrec.tune.data import list_examples

    examples = Path(__file__).resolve().parent.parent / "examples"
    for place, name in (("3", "scan_3.png"), ("7", "photo_7.jpg"), ("7/scans", "photo_7.jpg")):
        (tmp_path / place).mkdir(parents=True, exist_ok=True)
        shutil.copy(examples / name, tmp_path / place / name)
    locked = tmp_path / "7" / "scans"
    refuse_to_list(monkeypatch, locked)
    with pytest.raises(DataError) as err:
        list_examples(tmp_path)
    assert str(err.value) == (
        f"{locked}: cannot list this folder (Permission denied): its images would be left out; "
        "make it readable or move it away"
    )


def test_images_are_prepared_by_predicts_own_code(digit_files):
    from digitrec.runtime import Recognizer
    from digitrec.tune.data import list_examples, prepare

    rec = Recognizer(threads=1)
    examples = list_examples(digit_files / "folder")
    prepared = prepare(examples, rec.views)
    assert len(prepared.views) == 40 and not prepared.skipped and len(prepared.sha256) == 64
    np.testing.assert_array_equal(prepared.views[7], rec.views(examples[7].path))
    # a 28 px digit on white is a normalised scan to predict: the chosen blobs as written, then its plain crop
    # as written and squeezed
    assert prepared.views[7].shape == (4, 28, 28)


def test_csvs_as_spreadsheets_save_them_are_read(tmp_path):
    """Blank lines and a spreadsheet's trailing empty rows are not rows (and the line numbers in an
    error are the file's); Windows-1252, UTF-16 and semicolon-separated exports are CSVs too."""
    from digitrec.tune.data import list_examples

    rows = ["path,label", "a.png,7", "", "b.png,3", "", "c.png,x", ",", ",,"]
    (tmp_path / "blank.csv").write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"1 label\(s\) are not one digit 0-9 \(line 6: 'x'\)"):
        list_examples([tmp_path / "blank.csv"])
    # a note typed over two lines (quoted) is one row: an error names the line the row starts on
    (tmp_path / "note.csv").write_text('path,label,note\na.png,x,"two\nlines"\nb.png,3,\n')
    with pytest.raises(DataError, match=r"\(line 2: 'x'\)"):
        list_examples([tmp_path / "note.csv"])
    # one stray Windows byte in a UTF-8 file: named, not the whole file read as Windows-1252
    (tmp_path / "mixed.csv").write_bytes(
        "path,label\ncafé.png,7\nna\xefve.png,3\n".encode().replace(b"\xc3\xaf", b"\xef")
    )
    with pytest.raises(DataError, match="line 3 is not UTF-8 text like the rest of the file"):
        list_examples([tmp_path / "mixed.csv"])
    expected = [(tmp_path / "café.png", 7), (tmp_path / "b.png", 3)]
    for name, data in (
        ("excel.csv", "path;label\r\ncafé.png;7\r\nb.png;3\r\n;\r\n".encode("cp1252")),
        ("utf16.csv", "path\tlabel\ncafé.png\t7\nb.png\t3\n".encode("utf-16")),
        ("plain.csv", "path,label\ncafé.png,7\n\nb.png,3\n,\n".encode()),
        ("quoted.csv", 'path;label;"note, more"\ncafé.png;7;\nb.png;3;\n'.encode()),  # a comma in a quoted name
        ("oldmac.csv", b"path;label\rcaf\xe9.png;7\rb.png;3\r"),  # Windows-1252, lines ended by CR alone
    ):
        (tmp_path / name).write_bytes(data)
        assert [(e.path, e.label) for e in list_examples([tmp_path / name])] == expected, name


@pytest.mark.parametrize(
    "write, message",
    [
        (
            lambda d: (d / "x.csv").write_text("path,label\na.png,7\nb.png,12\nc.png,x\n"),
            "2 label(s) are not one digit 0-9 (line 3: '12', line 4: 'x')",
        ),
        (
            lambda d: (d / "x.csv").write_text("file,digit\na.png,7\n"),
            "the first row must name the columns path and label",
        ),
        (lambda d: (d / "x.csv").write_bytes(b"\xff\xfe\x00\x01garbage"), "not a CSV text file"),
        (  # a row copied and its path left as it was: the same file taught as 3 and as 5
            lambda d: (d / "x.csv").write_text("path,label\na.png,3\nb.png,4\n./a.png,5\nb.png,4\n"),
            "1 image(s) are labelled as two different digits (/.*/a.png as 3 and 5): give each one label",
        ),
        (lambda d: (d / "x").mkdir(), "expected subfolders 0 .. 9"),
        (lambda d: [(d / "x" / n).mkdir(parents=True) for n in ("3", "seven")], "subfolder(s) seven are not a digit"),
        (lambda d: None, "no such file or folder"),
    ],
)
def test_bad_data_is_a_clear_error(write, message, tmp_path):
    from digitrec.tune.data import list_examples

    write(tmp_path)
    target = next(iter(sorted(tmp_path.iterdir())), tmp_path / "missing.csv")
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        list_examples([target])


def test_unreadable_images_are_skipped_with_a_warning_or_an_error_when_too_many(digit_files, tmp_path):
    from digitrec.runtime import Recognizer
    from digitrec.tune.data import list_examples, prepare

    rec = Recognizer(threads=1)
    good = list_examples(digit_files / "folder")
    (tmp_path / "notes.png").write_text("not an image")
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((40, 40), 255, np.uint8))
    bad = list_examples([_csv(tmp_path, [("notes.png", 1), ("blank.png", 2), ("gone.png", 3)])])
    warnings = []
    prepared = prepare(good[:20] + bad, rec.views, warnings.append)
    assert len(prepared.examples) == 20
    assert [p.name for p, _ in prepared.skipped] == ["notes.png", "blank.png", "gone.png"]
    assert len(warnings) == 1 and "skipped 3 of 23 images" in warnings[0] and "no ink found" in warnings[0]
    with pytest.raises(DataError, match=r"3 of 13 images cannot be used: .*notes.png: not an image"):
        prepare(good[:10] + bad, rec.views)
    with pytest.raises(DataError, match="only 9 usable image"):
        prepare(good[:9], rec.views)


def test_the_cli_learns_from_the_others_and_exits_1_when_an_image_is_skipped(digit_files, tmp_path, capsys):
    """As predict and batch: a file that fails is named, the others are used, the exit status is 1
    (it was 0: a script checking it missed that some data was not used; a new user's audit)."""
    from conftest import run_main

    rows = (digit_files / "digits.csv").read_text().splitlines()
    csv = tmp_path / "some_gone.csv"
    absolute = [r for r in rows[1:] if r.startswith("/")]
    csv.write_text("\n".join(["path,label", *absolute, str(tmp_path / "gone.png") + ",3"]) + "\n")
    out = tmp_path / "mine.onnx"
    args = ["finetune", str(csv), "--out", str(out), "--max-steps", "1", "--threads", "1", "--json"]
    code, stdout, err = run_main(args, capsys)
    assert code == 1 and "gone.png: no such file" in err and "1 image(s) skipped" in err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["images"] == len(absolute) == 20 and len(summary["skipped"]) == 1 and out.exists()


def _csv(folder: Path, rows) -> Path:
    path = folder / "list.csv"
    path.write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in rows))
    return path


def test_the_shipped_model_rebuilt_from_its_onnx_weights_gives_its_logits(mnist):
    import torch

    from digitrec.modelfile import open_session
    from digitrec.runtime import default_model_path
    from digitrec.tune.weights import module_from_onnx

    module, card = module_from_onnx(default_model_path())
    assert card["architecture"] == "cnn"
    x = mnist["test"][0][:300].astype(np.float32)[:, None] / 255.0
    expected = open_session(default_model_path(), 1).run(None, {"image": x})[0]
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert (got.argmax(1) == mnist["test"][1][:300]).mean() > 0.99


def test_a_model_from_elsewhere_cannot_be_the_base(tmp_path):
    from predict_helpers import write_linear_onnx

    from digitrec.errors import ModelError
    from digitrec.tune.weights import module_from_onnx

    path = write_linear_onnx(tmp_path / "keras.onnx", np.zeros((784, 10)), np.zeros(10), {"name": "keras"})
    with pytest.raises(ModelError, match="does not say which digitrec network it is"):
        module_from_onnx(path)


def test_importing_digitrec_and_naming_finetune_imports_no_torch():
    code = "import sys, digitrec; f = digitrec.finetune; assert callable(f); assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_errors_are_messages_not_tracebacks(digit_files, tmp_path, capsys):
    from digitrec.cli import main

    few = _csv(tmp_path, [(p, d) for d in range(5) for p in [digit_files / "folder" / str(d) / "0.png"]])
    for args, message in (
        ([str(few)], "only 5 usable image(s); finetune needs at least 10"),
        ([str(tmp_path / "nope")], "no such file or folder"),
        ([str(digit_files / "digits.csv"), "--out", str(tmp_path / "m.txt")], "--out must end in .onnx"),
    ):
        out = ["--out", str(tmp_path / "m.onnx")] if "--out" not in args else []
        with pytest.raises(SystemExit) as info:
            main(["finetune", *args, *out])
        err = capsys.readouterr().err
        assert info.value.code == 1 and message in err and "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()


def test_a_tiny_finetune_writes_a_calibrated_model_with_its_card(digit_files, real_data, tmp_path, capsys):
    """The real command on 40 PNG digits, a few steps: JSON summary, a model predict can use, its card."""
    from digitrec.cli import main
    from digitrec.runtime import Recognizer

    out = tmp_path / "mine.onnx"
    with pytest.raises(SystemExit) as info:
        main(
            [
                "finetune",
                str(digit_files / "digits.csv"),
                "--out",
                str(out),
                "--max-steps",
                "4",
                "--threads",
                "1",
                "--json",
            ]
        )
    captured = capsys.readouterr()
    assert info.value.code == 0, captured.err
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["model"] == str(out) and summary["images"] == 40
    assert summary["val_images"] == 8 and summary["train_images"] == 32 and summary["steps"] <= 4
    assert summary["train_seconds"] > 0 and summary["val_accuracy"] >= 0.875  # MNIST digits: the base knows them
    rec = Recognizer(out)
    card = rec.card
    assert card["finetune"]["base_model"] == "digitrec-cnn-mix" and card["finetune"]["images"] == 40
    assert card["finetune"]["data_sha256"] == summary["data_sha256"] and card["val_accuracy"] == summary["val_accuracy"]
    assert rec.model_card.temperature == summary["temperature"] and 0.2 < summary["temperature"] < 2
    assert json.loads((tmp_path / "mine_card.json").read_text())["finetune"]["images"] == 40
    images, labels = real_data["test"]
    assert (rec.predict_probabilities(images[-500:]).argmax(1) == labels[-500:]).mean() > 0.98  # nothing forgotten
    assert rec.predict(digit_files / "folder" / "3" / "0.png").top[0][0] == 3  # (it may be flagged: 8 images set T)


def test_finetune_from_a_checkpoint_keeps_its_network(digit_files, mnist, tmp_path):
    """--model run folder: the PyTorch checkpoint is the base; the card says which network it is."""
    import torch

    from digitrec.checkpoint import save_checkpoint
    from digitrec.models import build_model
    from digitrec.runtime import Recognizer
    from digitrec.tune import finetune
    from digitrec.tune.run import FinetuneConfig

    torch.manual_seed(0)
    model = build_model("fastcnn", channels=[8, 16])
    meta = {
        "recipe": "fast",
        "architecture": "fastcnn",
        "config": {"model": {"channels": [8, 16]}, "val_size": 5000},
        "seed": 0,
        "epoch": 0,
    }
    save_checkpoint(tmp_path / "run" / "checkpoint.pt", {"model": model.state_dict(), "meta": meta})
    # An earlier run into the same --out kept its base, with the base's scorer beside it.
    (tmp_path / "m.reader_digits.onnx").write_bytes(b"an earlier run's copy of the base's digit scorer")
    summary = finetune(
        [digit_files / "folder"],
        tmp_path / "m.onnx",
        model=tmp_path / "run",
        mnist=mnist["train"],
        config=FinetuneConfig(max_steps=2, min_steps=2, threads=1, calibration_images=200),
    )
    card = Recognizer(tmp_path / "m.onnx").card
    assert card["architecture"] == "fastcnn" and card["input"]["name"] == "image"
    assert card["labels"] == list("0123456789")
    assert card["finetune"]["base_file"] == "checkpoint.pt" and summary["steps"] <= 2 and summary["images"] == 40
    assert card["finetune"]["base_model"] == summary["base_model"] == "fast (run run)"  # not "checkpoint"
    # The new model names no scorer (it scores its own cuts): the earlier copy went with the model it replaced.
    assert "reader_digits" not in card and summary["reader_digits"] is None
    assert not (tmp_path / "m.reader_digits.onnx").exists()


def test_a_file_listed_many_times_is_held_out_whole_or_refused(digit_files, mnist, tmp_path):
    from digitrec.tune import finetune

    same = _csv(tmp_path, [(digit_files / "folder" / "1" / "0.png", 1)] * 12)
    with pytest.raises(DataError, match="only 1 different images: nothing is left to learn from"):
        finetune([same], tmp_path / "m.onnx", mnist=mnist["train"])
    # Copies under other names (one drawing corrected twice on the page) are one image too.
    copies = [tmp_path / f"copy{k}.png" for k in range(12)]
    for copy in copies:
        copy.write_bytes((digit_files / "folder" / "1" / "0.png").read_bytes())
    with pytest.raises(DataError, match="only 1 different images: nothing is left to learn from"):
        finetune([_csv(tmp_path, [(c, 1) for c in copies])], tmp_path / "m.onnx", mnist=mnist["train"])


def test_copies_of_one_image_with_two_labels_are_refused_by_name(digit_files, tmp_path):
    """1,000 corrections of one drawing labelled 0-9 in turn made a model that learnt nothing and
    flagged every answer (held-out 12%, ECE 0.21), and nothing said why (an audit)."""
    from digitrec.runtime import Recognizer
    from digitrec.tune.data import list_examples, prepare

    good = list_examples(digit_files / "folder")
    for label in (3, 5):
        (tmp_path / f"again{label}.png").write_bytes(good[0].path.read_bytes())
    listed = good + list_examples([_csv(tmp_path, [("again3.png", 3), ("again5.png", 5)])])
    with pytest.raises(DataError, match=r"1 image\(s\) are copies of one another with different labels") as caught:
        prepare(listed, Recognizer(threads=1).views)
    for named in (f"{good[0].path} as 0", "again3.png as 3", "again5.png as 5"):  # each copy, with its label
        assert named in str(caught.value)


@pytest.mark.parametrize("args", [["finetune", "mine.csv", "--out", "m.onnx"], ["export", "m.onnx", "--calibrate"]])
def test_without_torch_finetune_and_calibrate_name_the_train_extra(args, monkeypatch, capsys):
    from conftest import run_main

    from digitrec.extras import install_command

    monkeypatch.setitem(sys.modules, "torch", None)
    code, out, err = run_main(args, capsys)
    assert code == 1 and out == "" and err.count("\n") == 1
    assert err.startswith("Error: ") and install_command("train") in err


def test_the_users_share_of_each_batch_shrinks_with_the_classes_they_gave():
    from digitrec.tune.run import FinetuneConfig, batch_shares

    config = FinetuneConfig()
    assert batch_shares(config, 10) == batch_shares(config, 6) == (48, 16)  # the recipe the benchmarks measured
    assert batch_shares(config, 3) == (24, 40)
    assert batch_shares(config, 1) == (8, 56)  # corrections of one digit: mostly MNIST, so nothing is forgotten


@pytest.mark.slow
def test_corrections_of_one_digit_are_learnt_without_forgetting_the_others(mnist, tmp_path):
    """Twelve drawings of one narrow zero, as the page's corrections give them (one class only): the
    shipped model reads them as 1; after a short finetune the held-out ones read 0, and MNIST stays.
    With 48 of every 64 training images the user's, the run forgot MNIST and gave the base back."""
    from web_helpers import png

    from digitrec.runtime import Recognizer
    from digitrec.tune import finetune
    from digitrec.tune.run import FinetuneConfig

    zero = np.array([(14, 5), (12.25, 14), (14, 24), (15.75, 14), (14, 5)], np.float32)
    rows = []
    for k, scale in enumerate(np.linspace(0.8, 1.1, 12)):
        image = np.full((280, 280), 255, np.uint8)
        points = ((14 + (zero - 14) * scale + 0.5) * 10).astype(np.int32)
        cv2.polylines(image, [points], False, 0, 22, lineType=cv2.LINE_AA)
        (tmp_path / f"{k}.png").write_bytes(png(image))
        rows.append((tmp_path / f"{k}.png", 0))
    assert Recognizer().predict(rows[6][0]).digit == 1
    summary = finetune(
        [_csv(tmp_path, rows)],
        tmp_path / "m.onnx",
        mnist=mnist["train"],
        config=FinetuneConfig(max_steps=40, threads=1),
    )
    assert summary["val_accuracy_before"] == 0.0 and summary["val_accuracy"] == 1.0
    rec = Recognizer(tmp_path / "m.onnx")
    assert all(rec.predict(path).top[0][0] == 0 for path, _ in rows)  # its best guess (it may still be unsure)
    images, labels = mnist["test"]
    assert (rec.predict_probabilities(images[:2000]).argmax(1) == labels[:2000]).mean() >= 0.99


# ---------- --numbers: labelled numbers -> their digits ----------


def _strip(*digits: int) -> np.ndarray:
    """A number written as the page writes it: the digits side by side, black on white."""
    from web_helpers import draw_digit

    return np.hstack([draw_digit(d, size=120, stroke=10) for d in digits])


def test_the_digits_of_labelled_numbers_are_cut_where_the_reader_finds_each(tmp_path):
    from digitrec.runtime import Recognizer
    from digitrec.tune.data import list_examples
    from digitrec.tune.numbers import digits_from_numbers, list_numbers

    cv2.imwrite(str(tmp_path / "17.png"), _strip(1, 7))
    cv2.imwrite(str(tmp_path / "717.png"), _strip(7, 1, 7))
    cv2.imwrite(str(tmp_path / "blank.png"), np.full((60, 200), 255, np.uint8))
    (tmp_path / "numbers.csv").write_text("path,text\n17.png,1 7\n717.png,71\nblank.png,5\n")
    numbers = list_numbers(tmp_path / "numbers.csv")
    assert numbers == [(tmp_path / "17.png", "17"), (tmp_path / "717.png", "71"), (tmp_path / "blank.png", "5")]
    warnings = []
    cut = digits_from_numbers(numbers, Recognizer().read, tmp_path / "cut", warnings.append)
    assert (cut.numbers, cut.used, cut.digits) == (3, 1, 2)
    assert [why for _, why in cut.skipped][0] == "read '717' (3 digits), labelled '71'"  # which ink is which?
    assert "no" in cut.skipped[1][1] and "2 of 3 numbers not used" in warnings[0]
    examples = list_examples([cut.csv])  # what finetune reads
    assert [e.label for e in examples] == [1, 7]
    rec = Recognizer()
    assert [rec.predict(e.path).digit for e in examples] == [1, 7]  # each crop holds its digit


@pytest.mark.parametrize(
    "text, message",
    [
        ("path,label\n", None),
        ("path,text\na.png,12a\n", "line 2: '12a'"),
        ("file,text\na.png,1\n", "path and text"),
        # a row copied and its text changed, not its path: the image of 34 was cut and learnt as 9 and 9
        (
            "path,text\na.png,34\nb.png,35\n./a.png,99\n",
            "1 image.s. are given two different numbers .*a.png as 34 and .*a.png as 99",
        ),
        # one photo corrected twice on the page: two names, the same bytes (a review)
        (
            "path,text\ncopy1.png,17\nb.png,35\ncopy2.png,18\n",
            "1 image.s. are given two different numbers .*copy1.png as 17 and .*copy2.png as 18",
        ),
    ],
)
def test_a_numbers_csv_without_digits_is_a_clear_error(text, message, tmp_path):
    from digitrec.tune.numbers import list_numbers

    for name in ("copy1.png", "copy2.png"):
        (tmp_path / name).write_bytes(b"the same bytes")
    (tmp_path / "n.csv").write_text(text)
    if message is None:  # `label` is taken for `text`; no rows, no error here (finetune counts the images)
        assert list_numbers(tmp_path / "n.csv") == []
        return
    with pytest.raises(DataError, match=message.replace("(", r"\(")):
        list_numbers(tmp_path / "n.csv")


@pytest.mark.slow  # with the line reader's replay: 18 s on a busy 2-core machine
def test_finetune_numbers_cli_learns_from_the_digits_of_numbers(real_data, tmp_path, capsys):
    from conftest import run_main

    rows = ["path,text"]
    for k, digits in enumerate([(1, 7), (7, 1), (1, 1), (7, 7), (1, 7, 1), (7, 1, 7)]):
        cv2.imwrite(str(tmp_path / f"{k}.png"), _strip(*digits))
        rows.append(f"{k}.png,{''.join(map(str, digits))}")
    (tmp_path / "numbers.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "m.onnx"
    args = ["finetune", "--numbers", str(tmp_path / "numbers.csv"), "--out", str(out), "--max-steps", "3"]
    code, stdout, err = run_main([*args, "--threads", "1", "--json"], capsys)
    assert code == 0, err
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["numbers"] == {"given": 6, "used": 6, "digits": 14} and summary["images"] == 14
    assert "from --numbers: 14 digits cut from 6 of 6 numbers" in err
    assert summary["line_reader"]["numbers"] == 6 and summary["line_reader"]["path"] == str(tmp_path / "m.line.onnx")
    assert (tmp_path / "m.line.onnx").is_file() and f"line reader: {tmp_path / 'm.line.onnx'}, from 6 numbers" in err
    code, _, err = run_main(["finetune", "--out", str(out)], capsys)
    assert code == 2 and "give DATA" in err
    # A number's file that cannot be read: the others are learnt, and the exit status says so (1)
    (tmp_path / "numbers.csv").write_text("\n".join([*rows, "gone.png,17"]) + "\n")
    code, stdout, err = run_main([*args, "--threads", "1", "--json"], capsys)
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert code == 1 and "gone.png: cannot read: no such file" in err and "1 image(s) skipped" in err
    assert summary["numbers"] == {"given": 7, "used": 6, "digits": 14} and out.is_file()


def test_an_out_that_cannot_be_written_is_refused_before_any_training(digit_files, mnist, tmp_path):
    """`finetune ... --out README.md/mine.onnx` (a file where a folder must be): the error came after
    the whole training; now before any image is prepared."""
    from digitrec.errors import DigitrecError
    from digitrec.tune import finetune
    from digitrec.tune.run import FinetuneConfig

    (tmp_path / "notes.txt").write_text("a file, not a folder")
    out = tmp_path / "notes.txt" / "mine.onnx"
    one_digit_numbers = tmp_path / "numbers.csv"  # path,text
    files = sorted((digit_files / "folder").glob("*/*.png"))
    one_digit_numbers.write_text("path,text\n" + "".join(f"{f},{f.parent.name}\n" for f in files))
    said: list[str] = []
    for numbers in (None, one_digit_numbers):  # the digit model, and --numbers (its line reader trains first)
        with pytest.raises(
            DigitrecError, match=f"cannot write {out}: {tmp_path / 'notes.txt'} is a file, not a folder"
        ):
            finetune(
                [digit_files / "folder"],
                out,
                numbers=numbers,
                mnist=mnist["train"],
                config=FinetuneConfig(max_steps=1, min_steps=1, threads=1),
                log=said.append,
            )
        assert said == []  # nothing prepared, nothing trained


def test_when_no_step_beats_the_base_it_reads_numbers_as_the_base_did(digit_files, real_data, tmp_path):
    """With a zero learning rate every step is the base, so the base is kept: its card then names
    the base's digit scorer (a copy beside it), and `read` scores its cuts as with the shipped model."""
    from digitrec import Recognizer, paths
    from digitrec.tune.run import FinetuneConfig, finetune

    out = tmp_path / "same.onnx"
    summary = finetune(digit_files / "digits.csv", out, config=FinetuneConfig(lr=0.0, max_steps=4, threads=1))
    assert summary["best_step"] == 0
    copy = tmp_path / "same.reader_digits.onnx"
    assert summary["reader_digits"] == str(copy)
    assert copy.read_bytes() == (paths.assets_dir() / "reader_digits.onnx").read_bytes()
    tuned = Recognizer(out)
    assert tuned.card["reader_digits"] == copy.name
    assert tuned.reader.recognizer.path == copy  # the shipped model's scorer, not the tuned model itself


def _base_copy(folder: Path, name: str, scorer: str) -> Path:
    """The shipped model copied to FOLDER/NAME with the shipped scorer beside it, its card naming SCORER."""
    import shutil

    from digitrec import paths
    from digitrec.modelfile.write import rewrite_card
    from digitrec.runtime import Recognizer

    folder.mkdir(exist_ok=True)
    shutil.copy(paths.assets_dir() / "model.onnx", folder / name)
    shutil.copy(paths.assets_dir() / "reader_digits.onnx", folder)
    card = {k: v for k, v in Recognizer(folder / name).card.items() if k != "format"}
    rewrite_card(folder / name, {**card, "reader_digits": scorer}, card_path=False)
    return folder / name


@pytest.mark.parametrize(
    "name, scorer, out, error, message",
    [
        # A base whose scorer went missing: the run failed after its training only when it kept the base.
        (
            "base.onnx",
            "gone.onnx",
            "mine.onnx",
            "ModelError",
            "names the reader's digit model gone.onnx, which is not there",
        ),
        # --out x.onnx beside a base named x.reader_digits.onnx: a kept base's scorer was copied over the base.
        (
            "x.reader_digits.onnx",
            "reader_digits.onnx",
            "x.onnx",
            "DataError",
            "would write its digit scorer x.reader_digits.onnx over the base model",
        ),
    ],
)
def test_a_base_whose_scorer_cannot_go_beside_out_is_refused_before_any_training(
    name, scorer, out, error, message, digit_files, mnist, tmp_path
):
    from digitrec import errors
    from digitrec.tune import finetune
    from digitrec.tune.run import FinetuneConfig

    base = _base_copy(tmp_path / "base", name, scorer)
    before = base.read_bytes()
    one_digit_numbers = tmp_path / "numbers.csv"  # path,text
    files = sorted((digit_files / "folder").glob("*/*.png"))
    one_digit_numbers.write_text("path,text\n" + "".join(f"{f},{f.parent.name}\n" for f in files))
    said: list[str] = []
    for numbers in (None, one_digit_numbers):  # the digit model, and --numbers (its line reader trains first)
        with pytest.raises(getattr(errors, error), match=message):
            finetune(
                [digit_files / "folder"],
                tmp_path / "base" / out,
                model=base,
                numbers=numbers,
                mnist=mnist["train"],
                config=FinetuneConfig(lr=0.0, max_steps=1, min_steps=1, threads=1, calibration_images=200),
                log=said.append,
            )
        assert said == []  # nothing prepared, nothing trained
        assert base.read_bytes() == before and not (tmp_path / "base" / out).exists()


def test_numbers_that_keep_a_base_without_a_scorer_remove_an_earlier_runs_copy(tmp_path):
    """`finetune --numbers` that cuts too few digits writes the base digit model: a base naming no
    scorer reads with itself, and the copy an earlier run left beside OUT goes."""
    from digitrec import paths
    from digitrec.runtime import Recognizer
    from digitrec.tune import _base_with_line_reader

    out = tmp_path / "mine.onnx"
    (tmp_path / "mine.reader_digits.onnx").write_bytes(b"an earlier run's copy")
    said: list[str] = []
    summary = _base_with_line_reader(
        Recognizer(paths.assets_dir() / "reader_digits.onnx"), out, {}, said.append, said.append
    )
    assert summary["reader_digits"] is None and not (tmp_path / "mine.reader_digits.onnx").exists()
    assert said == [
        "removed mine.reader_digits.onnx, the digit scorer of the model mine.onnx replaced: this one scores its own cuts"
    ]
    tuned = Recognizer(out)
    assert "reader_digits" not in tuned.card and tuned.reader.recognizer is tuned


def test_the_python_finetune_takes_its_settings_by_name(digit_files, tmp_path):
    # The audit: digitrec.finetune(csv, out, max_steps=40) was a TypeError; the settings were only
    # reachable through tune.run.FinetuneConfig, which the README never names.
    import digitrec

    summary = digitrec.finetune(digit_files / "digits.csv", tmp_path / "m.onnx", lr=0.0, max_steps=4, threads=1)
    assert summary["steps"] <= 4 and summary["best_step"] == 0  # lr 0: no step beats the base
    with pytest.raises(TypeError, match="max_stepz"):
        digitrec.finetune(digit_files / "digits.csv", tmp_path / "n.onnx", max_stepz=4)
