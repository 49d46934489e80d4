"""Train the reader's line model (CTC) and export it as ONNX.

    digitrec train --recipe line-reader [--out runs/line-reader] [--export PATH]
    python -m digitrec.train.line_reader [--config configs/line_reader.toml] [--numbers N] ...

Recipe: `configs/line_reader.toml` (`LineReaderConfig`; flags override it). Data
(`digitrec.train.lines`): lines of 1-8 augmented MNIST *training* digits as the reader renders
them, each number written by one writer (`digitrec.writers`); the held-out lines are the digits of
writers training never saw (`held_out_writers` of them), plain (neither distorted nor broken; the
MNIST test set is the reading benchmark's). Without the writer files (../shared) numbers are
composed at random and digits 55,000-59,999 are held out, with a warning in the log. Each line's
text holds the digits and the marks kept by `keep_punctuation` (`line_reader.ALPHABET`). They are
generated on `workers` processes and cached in the run folder (`lines.npz`, with the settings
that made them). Each epoch
the lines are shuffled, batched by similar width, and slanted, squeezed or stretched a little more (whole-line shear and scale).
The network (`models.LineCNN`): four 3x3 convolutions (16-32-64-64 channels, height pooled 32 -> 1, width to a column
per 4 px), then two width-5 1-D convolutions along the line (each column sees about two digits)
and a 14-way output per column (the digits, the marks, the blank); CTC loss. `start` (`--start FILE.onnx`) goes on training a line
reader instead of a fresh network, and `blend_start` exports a blend of the two networks' weights. Checkpoints each epoch (`checkpoint.pt`, safe to load
with `weights_only=True`); --resume continues.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitrec.errors import DataError, DigitrecError, ModelError
from digitrec.modelfile import ModelCard
from digitrec.models import LineCNN, LineEnsemble
from digitrec.read.line_reader import ALPHABET, HEIGHT, STRIDE, greedy_decode
from digitrec.tune.weights import freeze_batch_norm, line_reader_from_onnx

HELD_OUT = 55_000  # without the writer files: training digits from here on are held out
CHECKPOINT = "checkpoint.pt"
CACHE = "lines.npz"
CHUNK = 500  # numbers per generation task
BLANK = len(ALPHABET)  # CTC's blank: the last output


@dataclasses.dataclass
class LineReaderConfig:
    """The line reader's recipe (configs/line_reader.toml); a flag overrides its setting."""

    numbers: int = 20_000  # generated numbers for the training lines
    seed: int = 0  # the generated lines; also the network's start and batch order, unless init_seed
    # The network's start and batch order, where they should differ from `seed`'s: the members of
    # an ensemble (`--average`) train on one set of lines (the same cache) and differ in this.
    init_seed: int | None = None
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    held_out_writers: float = 0.08  # share of MNIST's training writers kept for validation
    document: float = 0.6  # share of numbers dressed as documents (digitrec.documents)
    # Of the training numbers' 1s, 2s, 4s, 7s and 9s, the share redrawn in a form real writers use
    # and MNIST's writers rarely did (`glyph_forms`: flagged 1s, looped 2s, crossed 7s...); the
    # held-out lines stay plain, comparable across recipes.
    forms: float = 0.0
    # Of the training numbers, the share scanned soft or at a low resolution (`synth.soft_scan`); the
    # held-out lines stay sharp, as with `forms`.
    soft: float = 0.0
    # A line reader (.onnx) to go on training instead of a fresh network: its weights, with its batch
    # norms frozen (the file holds them folded into the convolutions, their statistics gone). A
    # network that already reads sharp pages well keeps that while it learns new ones (session 20).
    # A relative path is from the current folder (as `distill.teachers`), not the recipe's.
    start: str = ""
    # With `start`: the share of the exported network's weights that are `start`'s, the rest the
    # trained ones' (weight by weight; Wortsman et al. 2022, "Robust fine-tuning of zero-shot
    # models"): a network trained on from `start` shares its basin, and the blend keeps more of
    # what `start` read well. 0: the trained network as it is.
    blend_start: float = 0.0

    @classmethod
    def load(cls, path: Path | None, overrides: dict | None = None) -> LineReaderConfig:
        from digitrec.train.config import read_toml, share

        values = read_toml(path) if path is not None else {}
        overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
        unknown = sorted(set(values) - {f.name for f in dataclasses.fields(cls)})
        unknown += sorted(set(overrides) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise DataError(f"unknown line-reader settings: {', '.join(unknown)}")
        config = dataclasses.replace(cls(**values), **overrides)
        # Shares are probabilities; a seed seeds numpy's and torch's generators (0 .. 2**32 - 1).
        for name in ("document", "forms", "soft", "held_out_writers", "blend_start"):
            share(getattr(config, name), name, "line-reader")
        if not 0 <= config.seed < 2**32:
            raise DataError(f"line-reader setting seed must be between 0 and {2**32 - 1:,}, got {config.seed!r}")
        if not isinstance(config.start, str):
            raise DataError(
                f"line-reader setting start must be the path of a line reader (.onnx), got {config.start!r}"
            )
        if config.start and not Path(config.start).is_file():
            raise DataError(f"line-reader setting start: {config.start} is not a file")
        if config.blend_start and not config.start:
            raise DataError("line-reader setting blend_start needs start: the line reader to blend with")
        return config


def default_recipe() -> Path:
    from digitrec import paths

    return paths.configs_dir() / "line_reader.toml"


def digit_sources(held_out: float) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """-> (training writers' index groups, held-out writers' groups) over MNIST train, or None
    without the writer files."""
    from digitrec.data import load_mnist
    from digitrec.writers import mnist_writers, split_writers

    writer_of = mnist_writers("train", load_mnist("train")[1])
    return None if writer_of is None else split_writers(writer_of, held_out)


def _generate(task: tuple[int, int, bool, LineReaderConfig]) -> tuple[list[np.ndarray], list[str]]:
    from digitrec.data import load_mnist
    from digitrec.train.lines import augmented_digits, break_strokes, line_examples, number_digits

    seed, count, held_out, config = task  # the recipe itself: each setting that draws lines is read here
    torch.set_num_threads(1)
    images, labels = load_mnist("train")
    sources = digit_sources(config.held_out_writers)
    rng = np.random.default_rng(seed)
    if sources is None:  # no writers: random digits of one part of MNIST train
        part = np.arange(HELD_OUT, len(images)) if held_out else np.arange(HELD_OUT)
        numbers = [part[k] for k in number_digits(rng, count, len(part), None)]
    else:
        numbers = number_digits(rng, count, len(images), sources[1] if held_out else sources[0])
    chosen = np.concatenate(numbers)
    images, labels = images[chosen], labels[chosen]
    if not held_out:  # each digit distorted afresh (and some broken) for this number
        images = break_strokes(augmented_digits(images, labels, seed), rng)
    ends = np.cumsum([len(n) for n in numbers])
    numbers = [np.arange(end - len(n), end) for n, end in zip(numbers, ends)]
    return line_examples(
        rng,
        images,
        labels,
        numbers,
        document=config.document,
        forms=0.0 if held_out else config.forms,
        soft=0.0 if held_out else config.soft,
    )


def generate_lines(
    config: LineReaderConfig, seed: int, count: int, held_out: bool
) -> tuple[list[np.ndarray], list[str]]:
    """`count` numbers drawn as the training lines are (`held_out`: the held-out writers', plain),
    in this process -> (uint8 (HEIGHT, W) line images, texts). `finetune --numbers` replays them."""
    return _generate((seed, count, held_out, config))


def build_data(config: LineReaderConfig, workers: int, log=print) -> dict:
    """`config.numbers` training numbers and a twentieth as many held-out ones (at least 20), made
    in chunks on `workers` processes; each chunk has its own seed, so the result does not depend on
    the number of workers."""
    numbers, seed = config.numbers, config.seed

    def chunks(total: int, first_seed: int, held_out: bool) -> list[tuple]:
        return [(first_seed + k, min(CHUNK, total - k * CHUNK), held_out, config) for k in range(-(-total // CHUNK))]

    if digit_sources(config.held_out_writers) is None:
        from digitrec.writers import writers_dir

        log(
            f"warning: no MNIST writer files in {writers_dir()}: numbers are composed of random digits "
            f"and validated on MNIST train {HELD_OUT:,}+ (writers shared with training)"
        )
    train_tasks = chunks(numbers, seed * 100_003, False)
    tasks = train_tasks + chunks(max(20, numbers // 20), seed * 100_003 + 50_000, True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(workers) as pool:
        results = list(pool.map(_generate, tasks))
    data = {}
    for name, part in (("train", results[: len(train_tasks)]), ("test", results[len(train_tasks) :])):
        data[name] = ([x for xs, _ in part for x in xs], [t for _, ts in part for t in ts])
    log(
        f"{len(data['train'][1]):,} training lines, {len(data['test'][1]):,} held-out "
        f"({time.perf_counter() - t0:.0f} s)"
    )
    return data


def pack_lines(images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Line images -> (one (HEIGHT, total width) array, their widths): how they are saved."""
    widths = np.array([x.shape[1] for x in images], np.int32)
    return (np.concatenate(images, axis=1) if images else np.zeros((HEIGHT, 0), np.uint8)), widths


def unpack_lines(flat: np.ndarray, widths: np.ndarray) -> list[np.ndarray]:
    """`pack_lines`' two arrays -> the line images."""
    if not len(widths):
        return []
    return np.split(flat, np.cumsum(widths)[:-1], axis=1)


def data_settings(config: LineReaderConfig) -> str:
    """The recipe's settings that decide its generated lines, as one string for a cache's key."""
    settings = {
        "numbers": config.numbers,
        "seed": config.seed,
        "held_out_writers": config.held_out_writers,
        "document": config.document,
        "alphabet": ALPHABET,
    }
    if config.forms:  # only when used: the caches of recipes without forms keep their keys
        settings["forms"] = config.forms
    if config.soft:
        settings["soft"] = config.soft
    return json.dumps(settings, sort_keys=True)


def cached_data(out: Path, config: LineReaderConfig, workers: int, log=print) -> dict:
    """The lines for `config`: from `out`/CACHE when made with the same settings, else drawn and
    saved there (`train.cache`)."""
    from digitrec.train.cache import cached

    def to_arrays(data: dict) -> dict:
        arrays = {}
        for name, (images, texts) in data.items():
            arrays[f"{name}_images"], arrays[f"{name}_widths"] = pack_lines(images)
            arrays[f"{name}_texts"] = np.array(texts)
        return arrays

    def from_arrays(f: dict) -> dict:
        return {
            name: (unpack_lines(f[f"{name}_images"], f[f"{name}_widths"]), list(f[f"{name}_texts"]))
            for name in ("train", "test")
        }

    return cached(
        out / CACHE,
        {"numbers": config.numbers, "seed": config.seed, "settings": data_settings(config)},
        lambda: build_data(config, workers, log),
        to_arrays,
        from_arrays,
    )


def _distort(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A whole-line shear (slant) and a width scale (narrow or wide hands), height unchanged."""
    import cv2

    h, w = image.shape
    shear, squeeze = rng.uniform(-0.25, 0.25), float(np.exp(rng.uniform(-0.2, 0.2)))
    new_w = max(STRIDE, int(round(w * squeeze / STRIDE)) * STRIDE)
    matrix = np.float32([[squeeze, -shear * squeeze, shear * squeeze * h / 2], [0, 1, 0]])
    return cv2.warpAffine(image, matrix, (new_w, h), flags=cv2.INTER_LINEAR, borderValue=0)


def batches(images: list[np.ndarray], texts: list[str], batch_size: int, rng: np.random.Generator | None):
    """Batches of similar widths (little padding) in random order; with `rng`, distorted."""
    order = np.argsort([x.shape[1] for x in images], kind="stable")
    groups = [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(groups)
    for group in groups:
        chosen = [_distort(images[k], rng) if rng is not None else images[k] for k in group]
        width = max(x.shape[1] for x in chosen)
        x = np.zeros((len(chosen), 1, HEIGHT, width), np.float32)
        for row, image in enumerate(chosen):
            x[row, 0, :, : image.shape[1]] = image / 255.0
        lengths = torch.tensor([x.shape[1] // STRIDE for x in chosen])
        target = [ALPHABET.index(c) for k in group for c in texts[k]]
        target_lengths = torch.tensor([len(texts[k]) for k in group])
        yield torch.from_numpy(x), lengths, torch.tensor(target, dtype=torch.long), target_lengths, group


def evaluate(model: nn.Module, images, texts, batch_size: int = 64, digits_only: bool = False) -> float:
    """String accuracy of the greedy reading on (images, texts); `digits_only`: of its digits (the
    texts are a number's digits, and the reader's marks, `7.50`'s point, are not in them)."""
    model.eval()
    right = 0
    with torch.no_grad():
        for x, lengths, _, _, group in batches(images, texts, batch_size, None):
            log_probs = model(x).log_softmax(-1).numpy()
            for row, k in enumerate(group):
                alphabet = ALPHABET[: log_probs.shape[-1] - 1]  # a digits-only run: its first ten
                said = greedy_decode(log_probs[row, : int(lengths[row])], alphabet)[0]
                right += (re.sub(r"\D", "", said) if digits_only else said) == texts[k]
    return right / max(1, len(texts))


def learning_rate(peak: float, step: int, total: int, warmup: float = 0.1) -> float:
    """Linear warm-up to `peak` over the first `warmup` of the steps, then a cosine down to ~0."""
    if step < warmup * total:  # never above the peak, even when the warm-up is under one step
        return peak * min(1.0, (step + 1) / (warmup * total))
    progress = (step - warmup * total) / max(1.0, (1 - warmup) * total)
    return peak * (0.5 * (1 + math.cos(math.pi * min(1.0, progress))) + 1e-3)


def export(model: nn.Module, path: Path, card: dict, check: list[np.ndarray]) -> dict:
    """ONNX with the card in its metadata; checked against PyTorch on real lines (each its own
    width) before it is written (`digitrec.modelfile.write`)."""
    from digitrec.modelfile.write import torch_reference, torch_to_onnx, write_model

    model = model.eval()
    scale = ModelCard.from_dict(card, str(path)).input.scale  # the pixels as the runtime will feed them
    return write_model(
        path,
        export=lambda tmp: torch_to_onnx(
            model, tmp, np.zeros((1, 1, HEIGHT, 64), np.float32), {"image": {3: "width"}, "logits": {1: "columns"}}
        ),
        probes=[scale(image)[None, None] for image in check],
        reference=torch_reference(model),
        card=card,
    )


def _card(
    model: nn.Module, accuracy: float, test_texts: list[str], command: str, alphabet: str = ALPHABET, **extra
) -> dict:
    from digitrec.checkpoint import source_commit

    return {
        "name": "digitrec-line-reader",
        "kind": "line-reader",
        "parameters": sum(p.numel() for p in model.parameters()),
        "input": {
            "name": "image",
            "shape": [1, HEIGHT, "width (multiple of 4)"],
            "range": [0.0, 1.0],
            "polarity": "white ink on black",
        },
        "output": {
            "name": "logits",
            "shape": ["width / 4", len(alphabet) + 1],
            "labels": f"the characters of the alphabet ({alphabet}), then the CTC blank",
        },
        "alphabet": alphabet,
        "test_string_accuracy": accuracy,
        "test_lines": len(test_texts),
        **extra,
        "torch": str(torch.__version__),
        "commit": source_commit(),
        "command": command,
    }


def average_runs(runs: list[Path], path: Path, command: str = "") -> tuple[float, int]:
    """The finished runs in `runs` (each a --out folder) -> one ONNX line reader that averages
    their probabilities, measured on the first run's held-out lines. -> (its held-out string
    accuracy, how many lines that was measured on)."""
    members, about = [], []
    for run in runs:
        state = torch.load(run / CHECKPOINT, map_location="cpu", weights_only=True)
        if json.loads(state.get("started_from", "{}")):  # its checkpoint is not what it exported
            raise ModelError(f"{run} went on from a line reader file (start): only runs trained afresh can be averaged")
        model = LineCNN(classes=state["model"]["along.6.weight"].shape[0])
        model.load_state_dict(state["model"])
        members.append(model.eval())
        with np.load(run / CACHE) as f:
            made = {"numbers": int(f["numbers"]), "seed": int(f["seed"])}
            if run == runs[0]:
                test_images, test_texts = unpack_lines(f["test_images"], f["test_widths"]), list(f["test_texts"])
        history = json.loads(state["history"])
        about.append(
            {
                "run": run.name,
                **made,
                "epochs": int(state["epoch"]),
                "history": history,
                "test_string_accuracy": history[-1]["test_string_accuracy"] if history else None,
            }
        )
    classes = {m.along[-1].out_channels for m in members}
    if len(classes) != 1:
        raise ModelError("these line readers write different alphabets: only runs of one alphabet can be averaged")
    alphabet = ALPHABET[: classes.pop() - 1]
    ensemble = LineEnsemble(members).eval()
    accuracy = evaluate(ensemble, test_images, test_texts)
    card = _card(ensemble, accuracy, test_texts, command, alphabet, members=about)
    export(ensemble, path, card, test_images[:200])
    return accuracy, len(test_texts)


def _first_network(config: LineReaderConfig) -> tuple[nn.Module, dict[str, torch.Tensor] | None, dict]:
    """The network a run starts from -> (it, the start's weights to blend with (None for a fresh
    network), what the card says of the start: {file, sha256}, {} for none). A fresh `LineCNN`, or
    the line reader `config.start` rebuilt from its ONNX weights (`tune.weights`), read once: the
    blend at the end uses the weights the run started from, whatever becomes of the file."""
    if not config.start:
        return LineCNN(classes=BLANK + 1), None, {}
    from digitrec.files import file_sha256
    from digitrec.modelfile import open_model

    path = Path(config.start)
    card = open_model(path, "line reader", 1, require_input=True)[1].data  # its alphabet before its weights
    if str(card.get("alphabet", "")) != ALPHABET:
        raise ModelError(
            f"{path} writes {card.get('alphabet', '0123456789')!r}: a run starts from a line reader of {ALPHABET!r}"
        )
    model, _ = line_reader_from_onnx(path)
    weights = {name: value.detach().clone() for name, value in model.state_dict().items()}
    return model, weights, {"file": path.name, "sha256": file_sha256(path)}


def _same_start(checkpoint: Path, before: dict, now: dict) -> None:
    """DigitrecError unless a resumed run goes on from the start it began with (`before`, from its
    checkpoint; `now`, from the settings): otherwise its batch norms would train, or the blend and
    the card would name another network."""
    if before == now:
        return
    began = f"{before['file']} (SHA-256 {before['sha256'][:12]}...)" if before else "a fresh network"
    asked = f"{now['file']} (SHA-256 {now['sha256'][:12]}...)" if now else "no start"
    raise DigitrecError(f"{checkpoint} began from {began}, but this run gives {asked}: resume it with the same start")


def blend(model: nn.Module, start: dict[str, torch.Tensor], share: float) -> nn.Module:
    """`model` with each floating-point weight and buffer replaced by (1 - share) of its own plus
    `share` of `start`'s (the weights of the same network where `model` was trained from)."""
    mixed = {
        name: (1 - share) * mine + share * start[name] if mine.is_floating_point() else mine
        for name, mine in model.state_dict().items()
    }
    model.load_state_dict(mixed)
    return model


def train_line_reader(
    config: LineReaderConfig,
    out: Path,
    *,
    workers: int = 1,
    threads: int = 0,
    resume: bool = False,
    export_to: Path | None = None,
    command: str = "",
    log=print,
    progress: bool = True,
) -> dict:
    """Train (or, `resume`, continue) a line reader in the run folder `out`; `export_to`: also write
    the ONNX model there. -> the run's summary (held-out accuracy, lines, history). Raises
    DigitrecError (a run already there, a cache made otherwise); prints only through `log`."""
    from digitrec.checkpoint import save_checkpoint

    if threads:
        torch.set_num_threads(threads)
    checkpoint = out / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise DigitrecError(f"{checkpoint} already exists: pass --resume to continue that run, or choose another --out")
    if resume and not checkpoint.is_file():
        raise DigitrecError(f"nothing to resume: {checkpoint} does not exist")
    init_seed = config.seed if config.init_seed is None else config.init_seed
    torch.manual_seed(init_seed)
    # The start is read (and a bad one refused) before any line is drawn: drawing takes minutes.
    model, start_weights, started = _first_network(config)
    data = cached_data(out, config, workers, log)
    train_images, train_texts = data["train"]
    test_images, test_texts = data["test"]
    (out / "line_reader_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = -(-len(train_texts) // config.batch_size)
    ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    start, history = 0, []
    if resume:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        _same_start(checkpoint, json.loads(state.get("started_from", "{}")), started)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start, history = int(state["epoch"]), json.loads(state["history"])
    log(
        f"{len(train_texts):,} training lines; {sum(p.numel() for p in model.parameters()):,} parameters; "
        f"epochs {start + 1}-{config.epochs}"
    )
    t0 = time.perf_counter()
    for epoch in range(start, config.epochs):
        model.train()
        if config.start:
            freeze_batch_norm(model)
        rng = np.random.default_rng(init_seed * 1000 + epoch)
        total, count = 0.0, 0
        steps = batches(train_images, train_texts, config.batch_size, rng)
        if progress:
            from rich.progress import track

            steps = track(steps, f"epoch {epoch + 1}/{config.epochs}", total=per_epoch, transient=True)
        for step, (x, lengths, target, target_lengths, _) in enumerate(steps):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config.lr, epoch * per_epoch + step, config.epochs * per_epoch)
            log_probs = model(x).log_softmax(-1).permute(1, 0, 2)  # (T, N, C) for CTCLoss
            loss = ctc(log_probs, target, lengths, target_lengths)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            total, count = total + loss.item() * len(lengths), count + len(lengths)
        accuracy = evaluate(model, test_images, test_texts)
        history.append(
            {
                "epoch": epoch + 1,
                "loss": total / count,
                "test_string_accuracy": accuracy,
                "seconds": time.perf_counter() - t0,
            }
        )
        log(f"epoch {epoch + 1}: loss {total / count:.4f}, held-out string accuracy {accuracy:.2%}")
        save_checkpoint(
            checkpoint,
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "epoch": epoch + 1,
                "history": json.dumps(history),
                "started_from": json.dumps(started),
            },
        )
    blended = {}
    if start_weights is not None and config.blend_start:
        blended = {"trained_test_string_accuracy": evaluate(model, test_images, test_texts)}
        model = blend(model, start_weights, config.blend_start)
        log(
            f"trained: held-out string accuracy {blended['trained_test_string_accuracy']:.2%}; "
            f"blended with {config.blend_start:g} of the start:"
        )
    accuracy = evaluate(model, test_images, test_texts)
    log(f"line reader: held-out string accuracy {accuracy:.2%} on {len(test_texts):,} lines")
    summary = {
        "test_string_accuracy": accuracy,
        "test_lines": len(test_texts),
        "train_lines": len(train_texts),
        "history": history,
        **blended,
    }
    if export_to:
        recipe = dataclasses.asdict(config)
        if started:  # the file's name (its SHA-256 is in started_from), not this machine's path
            recipe["start"] = started["file"]
        provenance = {"started_from": started} if started else {}
        card = _card(model, accuracy, test_texts, command, config=recipe, **provenance, **summary)
        export(model, export_to, card, test_images[:200])
        log(f"wrote {export_to} ({export_to.stat().st_size:,} bytes)")
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=None, help="the recipe (default configs/line_reader.toml)")
    parser.add_argument("--out", type=Path, default=Path("runs/line-reader"))
    parser.add_argument("--numbers", type=int, default=None, help="generated numbers for the training lines")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--init-seed", type=int, default=None, help="the network's start and batch order (default: --seed)"
    )
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument(
        "--start", default=None, help="a line reader (.onnx) to go on training (default: a fresh network)"
    )
    parser.add_argument(
        "--blend-start", type=float, default=None, help="with --start: the share of its weights in the exported network"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes generating lines")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    parser.add_argument("--export", type=Path, default=None, help="also write the ONNX model here")
    parser.add_argument(
        "--average",
        type=Path,
        nargs="+",
        default=None,
        metavar="RUN",
        help="train nothing: export the average of these finished runs to --export",
    )
    args = parser.parse_args(argv)
    command = "python -m digitrec.train.line_reader " + " ".join(sys.argv[1:] if argv is None else argv)
    if args.average:
        if not args.export:
            parser.error("--average needs --export PATH")
        missing = [str(run) for run in args.average if not (run / CHECKPOINT).is_file() or not (run / CACHE).is_file()]
        if missing:
            raise ModelError(f"not a finished line-reader run (no {CHECKPOINT} or {CACHE}): {', '.join(missing)}")
        accuracy, lines = average_runs(args.average, args.export, command)
        print(
            f"average of {len(args.average)} line readers: held-out string accuracy {accuracy:.2%} "
            f"on {lines:,} lines of {args.average[0].name}"
        )
        print(f"wrote {args.export} ({args.export.stat().st_size:,} bytes)")
        return
    overrides = {
        "numbers": args.numbers,
        "seed": args.seed,
        "init_seed": args.init_seed,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "start": args.start,
        "blend_start": args.blend_start,
    }
    config = LineReaderConfig.load(args.config or default_recipe(), overrides)
    train_line_reader(
        config,
        args.out,
        workers=args.workers,
        threads=args.threads,
        resume=args.resume,
        export_to=args.export,
        command=command,
    )


if __name__ == "__main__":
    try:
        main()  # the script's own output is main's; the functions above only return and raise
    except DigitrecError as exc:
        sys.exit(f"Error: {exc}")
