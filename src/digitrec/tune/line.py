"""`finetune --numbers`: teach the reader's line model (`digitrec.read.line_reader`, CTC) the user's numbers.

1. the base line reader as a PyTorch `LineCNN` (`weights.line_reader_from_onnx`: the shipped one
   exists only as ONNX), batch norms frozen;
2. the user's line images (`tune.lines`), a share of the files held out for early stopping;
3. replay: generated numbers of MNIST's training writers, drawn by the line reader's own generator
   (`train.line_reader.generate_lines`, as it trains), and generated numbers of its held-out writers
   to check at each evaluation that nothing is forgotten;
4. each step half the user's lines, half replay, both slanted and squeezed as in training
   (`train.line_reader.batches`, its `_distort`), CTC loss; the best step is kept: the best held-out
   string accuracy (then CTC loss), among the steps that lose at most `forget` of the generated
   numbers' accuracy against the base (step 0, the base itself, is a candidate);
5. the ONNX file and its card, by the line reader's own `export`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from torch import nn

from digitrec.errors import DataError
from digitrec.tune.data import held_out
from digitrec.tune.lines import NumberLines
from digitrec.tune.steps import BestCheck, cosine_lr

MIN_NUMBERS = 4  # fewer different files than this leave nothing to hold out and learn from


@dataclass(frozen=True)
class LineTuneConfig:
    val_share: float = 0.2  # of the user's files, held out for early stopping
    user_batch: int = 16  # the user's lines per step ...
    replay_batch: int = 16  # ... and generated ones beside them, so nothing is forgotten
    replay_lines: int = 1000  # generated training-writer numbers drawn for the run (at most steps x replay_batch)
    guard_lines: int = 200  # generated held-out-writer numbers scored at each check
    # Of the guard's string accuracy a chosen step may lose against the base: 200 lines measure it
    # within about 3 points (one standard error), and at 0.02 two runs in three kept the base.
    forget: float = 0.03
    # AdamW, cosine to 0, a fifteenth of the line reader's own peak: at 5e-4 the generated numbers
    # lost 1-3 points (seeds 0 and 1 of the parish benchmark), at 2e-4 0-1.6, the strips the same.
    lr: float = 2e-4
    weight_decay: float = 0.01
    epochs: float = 20.0  # passes over the user's training lines ...
    min_steps: int = 40  # ... within these bounds
    max_steps: int = 300
    evaluations: int = 10
    patience: int = 6  # checks without improvement before stopping
    seed: int = 0
    threads: int = 0  # torch threads; 0 = all cores


def finetune_line_reader(
    lines: NumberLines,
    out: Path,
    base: Path,
    config: LineTuneConfig | None = None,
    log: Callable[[str], None] = lambda m: None,
) -> dict:
    """Fine-tune the line reader `base` (.onnx) on `lines` and write it to `out` with its card.
    -> summary: path, card_path, numbers, lines, train_numbers, val_numbers, val_accuracy(_before),
    generated_accuracy(_before), steps, best_step, train_seconds, base. DataError: too few numbers."""
    from digitrec.files import file_sha256
    from digitrec.read.line_reader import ALPHABET
    from digitrec.train.line_reader import LineReaderConfig, _card, evaluate, export
    from digitrec.tune.weights import freeze_batch_norm, line_reader_from_onnx

    config = config or LineTuneConfig()
    # Hold out images, not lines (an image may hold several lines), at least one; copies of one
    # image (one photo corrected twice on the page) fall on one side.
    content = {f.resolve(): file_sha256(f) for f in set(lines.files)}
    images, held = held_out(content, config.val_share, 1, config.seed)
    if images < MIN_NUMBERS:
        raise DataError(
            f"only {images} number(s) whose lines were found; adapting the line reader needs at least {MIN_NUMBERS}"
        )
    model, base_card = line_reader_from_onnx(base)
    alphabet = str(base_card.get("alphabet", ALPHABET[:10]))
    if any(c not in alphabet for t in lines.texts for c in t):
        raise DataError(f"{base}: this line reader writes only {alphabet!r}")

    is_val = [content[f.resolve()] in held for f in lines.files]
    train = [(x, t) for x, t, v in zip(lines.images, lines.texts, is_val) if not v]
    val_x = [x for x, v in zip(lines.images, is_val) if v]
    val_t = [t for t, v in zip(lines.texts, is_val) if v]
    steps = int(min(config.max_steps, max(config.min_steps, math.ceil(config.epochs * len(train) / config.user_batch))))
    every = max(1, steps // config.evaluations)

    # Replay as the base trained: its writer split (its card's recipe), fresh numbers of its generator.
    recipe = LineReaderConfig(
        **{k: v for k, v in (base_card.get("config") or {}).items() if k in LineReaderConfig.__dataclass_fields__}
    )
    started = time.perf_counter()
    replay_x, replay_t = _generated(recipe, config.seed, min(config.replay_lines, steps * config.replay_batch), False)
    guard_x, guard_t = _generated(recipe, config.seed + 1, config.guard_lines, True)
    torch.set_num_threads(config.threads or os.cpu_count() or 1)  # (the generator sets one thread)
    log(
        f"line reader: {len(train)} lines of yours + {len(replay_x)} generated numbers to replay "
        f"({time.perf_counter() - started:.0f} s), {len(val_t)} held out; up to {steps} steps"
    )
    if any(c not in alphabet for t in replay_t for c in t):  # a digits-only base: replay its digits only
        keep = [k for k, t in enumerate(replay_t) if all(c in alphabet for c in t)]
        replay_x, replay_t = [replay_x[k] for k in keep], [replay_t[k] for k in keep]
        keep = [k for k, t in enumerate(guard_t) if all(c in alphabet for c in t)]
        guard_x, guard_t = [guard_x[k] for k in keep], [guard_t[k] for k in keep]

    ctc = nn.CTCLoss(blank=len(alphabet), zero_infinity=True)  # the blank follows the alphabet

    def score() -> tuple[float, float, float]:
        """(generated numbers' string accuracy, held-out string accuracy, minus its mean CTC loss)."""
        # Your numbers' texts are digits only: an amount read `18,611.72` is right as 1861172.
        held = evaluate(model, val_x, val_t, digits_only=True)
        return (evaluate(model, guard_x, guard_t), held, -_mean_loss(model, ctc, val_x, val_t))

    rng = np.random.default_rng(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    train_started = time.perf_counter()
    kept = BestCheck(model, score(), config.forget, config.patience)
    base_score, step = kept.base, 0
    for step in range(1, steps + 1):
        model.train()
        freeze_batch_norm(model)  # folded away in the ONNX file: a few lines cannot re-estimate them
        u = rng.integers(len(train), size=config.user_batch)
        r = rng.integers(len(replay_x), size=config.replay_batch) if replay_x else []
        x, lengths, target, target_lengths = _batch(
            [train[k] for k in u] + [(replay_x[k], replay_t[k]) for k in r], rng
        )
        cosine_lr(optimizer, config.lr, step, steps)
        loss = ctc(model(x).log_softmax(-1).permute(1, 0, 2), target, lengths, target_lengths)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        if step % every == 0 or step == steps:
            now = score()
            log(
                f"line reader step {step}/{steps}: loss {loss.item():.3f}, held-out {now[1]:.1%}, "
                f"generated {now[0]:.1%}"
            )
            if kept.offer(model, now, step):
                break
    train_seconds = time.perf_counter() - train_started
    kept.restore(model)
    best, best_step = kept.best, kept.step
    model.eval()
    log(
        f"line reader: held-out numbers {base_score[1]:.1%} -> {best[1]:.1%}, generated {base_score[0]:.1%} -> "
        f"{best[0]:.1%} (step {best_step})"
    )

    base_name = base_card.get("name") or Path(base).stem
    about = {
        "base_line_reader": base_name,
        "base_file": Path(base).name,
        "base_sha256": file_sha256(base),
        "data_sha256": lines.sha256,
        "numbers": lines.used,
        "lines": len(lines.texts),
        "train_numbers": images - len(held),
        "val_numbers": len(held),
        "val_accuracy_before": base_score[1],
        "val_accuracy": best[1],
        "generated_accuracy_before": base_score[0],
        "generated_accuracy": best[0],
        "steps": step,
        "best_step": best_step,
        "train_seconds": round(train_seconds, 2),
        "settings": asdict(config),
    }
    card = _card(model, best[0], guard_t, "digitrec finetune --numbers", alphabet, finetune=about)
    card.update(
        name=f"{base_name}-finetuned",
        val_accuracy=best[1],
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    written = export(model, Path(out), card, (val_x + guard_x)[:50])
    return {"path": written["path"], "card_path": written.get("card_path"), **about}


def _generated(recipe, seed: int, count: int, held_out: bool) -> tuple[list[np.ndarray], list[str]]:
    """`count` generated numbers in chunks of the generator's size, each chunk its own seed. Drawn
    once per machine and kept in the cache (`line-replay/`): drawing a thousand numbers is most of
    a short fine-tuning's time, and the same base and seed ask for the same numbers every time."""
    from digitrec import __version__, paths
    from digitrec.train.cache import cached
    from digitrec.train.line_reader import CHUNK, data_settings, generate_lines, pack_lines, unpack_lines

    def draw() -> tuple[list[np.ndarray], list[str]]:
        images, texts = [], []
        for k in range(-(-count // CHUNK)):
            x, t = generate_lines(
                recipe, 1_000_003 * (seed + 1) + 2 * k + held_out, min(CHUNK, count - k * CHUNK), held_out
            )
            images += x
            texts += t
        return images, texts

    def to_arrays(lines: tuple[list[np.ndarray], list[str]]) -> dict[str, np.ndarray]:
        flat, widths = pack_lines(lines[0])
        return {"images": flat, "widths": widths, "texts": np.array(lines[1], dtype=str)}

    def from_arrays(f: dict[str, np.ndarray]) -> tuple[list[np.ndarray], list[str]]:
        return unpack_lines(f["images"], f["widths"]), [str(t) for t in f["texts"]]

    # What decides the numbers; the version stands for the generator's code.
    made_with: dict[str, int | float | str] = {
        "seed": seed,
        "count": count,
        "held_out": int(held_out),
        "settings": data_settings(recipe),
        "version": __version__,
    }
    name = hashlib.sha256(json.dumps(made_with, sort_keys=True).encode()).hexdigest()[:16]
    return cached(paths.cache_root() / "line-replay" / f"{name}.npz", made_with, draw, to_arrays, from_arrays)


def _batch(pairs: list[tuple[np.ndarray, str]], rng: np.random.Generator):
    """(image, text) pairs -> one distorted training batch (`train.line_reader.batches`)."""
    from digitrec.train.line_reader import batches

    x, lengths, target, target_lengths, _ = next(batches([p[0] for p in pairs], [p[1] for p in pairs], len(pairs), rng))
    return x, lengths, target, target_lengths


@torch.no_grad()
def _mean_loss(model: nn.Module, ctc: nn.CTCLoss, images: list[np.ndarray], texts: list[str]) -> float:
    """The mean CTC loss of the lines, undistorted (it breaks ties between steps of equal accuracy)."""
    from digitrec.train.line_reader import batches

    model.eval()
    total = 0.0
    for x, lengths, target, target_lengths, group in batches(images, texts, 64, None):
        log_probs = model(x).log_softmax(-1).permute(1, 0, 2)
        total += float(ctc(log_probs, target, lengths, target_lengths)) * len(group)
    return total / max(1, len(texts))
