"""`finetune(data, out)`: teach a digit model the user's handwriting, top to bottom.

1. the base model as a PyTorch module (`weights.load_base`: the shipped ONNX by default);
2. the user's images prepared exactly as `predict` prepares them (`Recognizer.views`, every view:
   as written and squeezed), a share of the files held out for validation (by file, so no view
   of a held-out image is trained on);
3. training: each batch is 3/4 the user's views and 1/4 MNIST replay (the base run's own
   training split, never its validation images), both augmented as the base was
   (`train.augment`), batch norms frozen; every few steps the held-out files are scored as
   predict scores them (probabilities averaged over the views), beside 2,000 MNIST validation
   digits, and the best weights are kept (early stopping; step 0, the base itself, is a candidate);
4. the temperature refitted on MNIST validation images plus the held-out views;
5. the ONNX model and its card written by `modelfile.write` (parity, checker, atomic).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from digitrec.errors import DataError
from digitrec.tune.data import held_out, list_examples, prepare
from digitrec.tune.scorer import base_scorer, scorer_beside
from digitrec.tune.steps import BestCheck, cosine_lr
from digitrec.tune.weights import freeze_batch_norm, load_base

# The card keys that describe the network itself, carried over from the base model's card.
NETWORK_KEYS = (
    "recipe",
    "architecture",
    "layers",
    "parameters",
    "flops_per_image",
    "input",
    "output",
    "labels",
    "config",
    "seed",
)


@dataclass(frozen=True)
class FinetuneConfig:
    val_share: float = 0.2  # of the user's files, held out for validation and early stopping
    user_batch: int = 48  # user views per step when the user's digits cover all ten classes ...
    replay_batch: int = 16  # ... and MNIST training images beside them, so nothing is forgotten
    user_per_class: int = 8  # ... but at most this many per digit the user gave: see `batch_shares`
    lr: float = 3e-4  # AdamW, cosine to 0: small steps from a model that is already good
    weight_decay: float = 0.0
    label_smoothing: float = 0.1  # as the base was trained; the temperature is refitted after
    epochs: float = 10.0  # passes over the user's training views ...
    min_steps: int = 30  # ... within these bounds
    max_steps: int = 300
    evaluations: int = 10  # validation checks over the run
    patience: int = 6  # checks without improvement before stopping
    # MNIST validation digits (of guard_images) a chosen step may get wrong beyond the base
    # (2 of 500 rejected every step of a run that gained 4 points on its held-out cheques)
    forget: int = 4
    # MNIST validation images scored beside the held-out files at each check (1,000 let 4 of 23
    # benchmark runs keep a step under 99.5% on MNIST test: 4 of 1,000 is 0.4 points of noise) ...
    guard_images: int = 2000
    # ... their mean log-likelihood counted as this many held-out files: as many as there are, a pooled
    # mean (tried 20: more gain from 300 cheque digits, but 30 of them then cost the other cheques 2 points)
    guard_weight: float = 1000.0
    calibration_images: int = 2000  # MNIST validation images the temperature is fitted on (with the user's)
    seed: int = 0
    threads: int = 0  # torch threads; 0 = all cores


def finetune(
    data,
    out: Path | str,
    *,
    model: Path | str | None = None,
    config: FinetuneConfig | None = None,
    log: Callable[[str], None] = lambda m: None,
    warn: Callable[[str], None] = lambda m: None,
    mnist: tuple[np.ndarray, np.ndarray] | None = None,
    card_extra: dict | None = None,
) -> dict:
    """Fine-tune MODEL (None: the shipped model; an .onnx digitrec made, a run folder or checkpoint.pt)
    on DATA (CSV files path,label and/or folders 0-9, see `digitrec.tune.data`) and write the ONNX
    model OUT with its card. `mnist` (images, labels) replaces the MNIST training set (tests);
    `card_extra`: more card entries (`line_reader`: the line reader this model reads with).
    Returns a summary: model, images, train_images, val_images, skipped, train_seconds,
    val_accuracy, val_accuracy_before, temperature, steps, base_model, data_sha256, seconds, and
    reader_digits (the copy of the base's digit scorer when the base was kept, else None)."""
    from digitrec.calibration import calibration_card
    from digitrec.data import load_mnist
    from digitrec.files import check_writable, file_sha256
    from digitrec.runtime import Recognizer
    from digitrec.train.augment import augment_batch
    from digitrec.train.config import AugmentConfig, TrainConfig
    from digitrec.train.loop import split_indices

    config = config or FinetuneConfig()
    started = time.perf_counter()
    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise DataError(f"--out must end in .onnx, got {out.name}")
    check_writable(out)  # now, not after the training
    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    examples = list_examples(data)
    module, base_card, base_path = load_base(model)
    scorer_source = base_scorer(base_path, base_card, out)  # now: a missing one fails before the training
    # The views come from the product's own preprocessing, whatever the base (it does not depend on the model).
    recognizer = Recognizer(base_path if base_path.suffix.lower() == ".onnx" else None, threads=1)
    prepared = prepare(examples, recognizer.views, warn)
    log(
        f"{len(prepared.examples)} images prepared as predict sees them"
        f"{f' ({len(prepared.skipped)} skipped)' if prepared.skipped else ''}"
    )

    # Hold out images, not views, at least two of them (copies of one image held out whole).
    content = {e.path.resolve(): c for e, c in zip(prepared.examples, prepared.contents)}
    images, held = held_out(content, config.val_share, 2, config.seed)
    val_files = [i for i, c in enumerate(prepared.contents) if c in held]
    train_files = [i for i, c in enumerate(prepared.contents) if c not in held]
    if not train_files:
        raise DataError(
            f"the {len(prepared.examples)} images are only {images} different images: "
            "nothing is left to learn from once some are held out"
        )
    train_x = np.concatenate([prepared.views[i] for i in train_files])  # uint8 (V, 28, 28)
    train_y = np.concatenate([np.full(len(prepared.views[i]), prepared.examples[i].label) for i in train_files])
    val_views = [prepared.views[i] for i in val_files]
    val_y = np.array([prepared.examples[i].label for i in val_files])

    base_config = base_card.get("config") or {}
    images, labels = mnist if mnist is not None else load_mnist("train")
    split = TrainConfig(val_size=int(base_config.get("val_size", 5000)), limit=int(base_config.get("limit", 0)))
    mnist_val_idx, mnist_train_idx = split_indices(split, len(images))
    if not len(mnist_val_idx):  # a base trained on all 60,000: calibrate on a slice of them instead
        mnist_val_idx = mnist_train_idx[: config.calibration_images]
    augment = AugmentConfig(
        **{k: v for k, v in (base_config.get("augment") or {}).items() if k in AugmentConfig.__dataclass_fields__}
    )

    user_batch, replay_batch = batch_shares(config, len(np.unique(train_y)))
    steps = int(min(config.max_steps, max(config.min_steps, math.ceil(config.epochs * len(train_x) / user_batch))))
    every = max(1, steps // config.evaluations)
    module = module.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(module.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    user_x, user_y = torch.from_numpy(train_x).unsqueeze(1), torch.from_numpy(train_y.astype(np.int64))
    replay_x = torch.from_numpy(np.ascontiguousarray(images[mnist_train_idx])).unsqueeze(1)
    replay_y = torch.from_numpy(labels[mnist_train_idx].astype(np.int64))

    guard_x = images[mnist_val_idx[: config.guard_images]]
    guard_y = labels[mnist_val_idx[: config.guard_images]]

    def score() -> tuple[int, float, float]:
        """(MNIST validation digits right, held-out accuracy, log-likelihood), the files predicted
        as predict does (views averaged). Accuracy ties are common with 2-60 held-out files; the
        log-likelihood breaks them: the held-out files' summed with the MNIST digits' mean counted
        as `config.guard_weight` files, so that with few files MNIST decides (two lucky files do
        not choose a step that forgets it) and with many the user's files do."""
        probs = _file_probabilities(module, val_views)
        guard = _file_probabilities(module, list(guard_x[:, None])) if len(guard_y) else np.ones((0, 10))
        user = np.log(probs[np.arange(len(val_y)), val_y] + 1e-12).sum()
        mnist_mean = np.log(guard[np.arange(len(guard_y)), guard_y] + 1e-12).mean() if len(guard_y) else 0.0
        return (
            int((guard.argmax(1) == guard_y).sum()),
            float((probs.argmax(1) == val_y).mean()),
            float((user + config.guard_weight * mnist_mean) / (len(val_y) + config.guard_weight)),
        )

    log(
        f"training on {len(train_files)} images ({len(train_x)} views) + MNIST replay "
        f"({user_batch} + {replay_batch} per step), {len(val_files)} held out; up to {steps} steps"
    )
    train_started = time.perf_counter()
    # A step wins on the held-out files (accuracy, then log-likelihood) unless it forgets MNIST:
    # more than `config.forget` of the validation digits the base got right.
    kept = BestCheck(module, score(), config.forget, config.patience)
    before, step = kept.base[1], 0
    for step in range(1, steps + 1):
        module.train()
        freeze_batch_norm(module)
        u = torch.randint(len(user_x), (user_batch,), generator=gen)
        r = torch.randint(len(replay_x), (replay_batch,), generator=gen)
        y = torch.cat([user_y[u], replay_y[r]])
        x = augment_batch(torch.cat([user_x[u], replay_x[r]]).float().div_(255), augment, gen, y)
        cosine_lr(optimizer, config.lr, step, steps)
        loss = F.cross_entropy(
            module(x.contiguous(memory_format=torch.channels_last)), y, label_smoothing=config.label_smoothing
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % every == 0 or step == steps:
            now = score()
            log(
                f"step {step}/{steps}: loss {loss.item():.3f}, held-out accuracy {now[1]:.1%}, "
                f"MNIST validation {now[0]}/{len(guard_y)}"
            )
            if kept.offer(module, now, step):
                log(f"no better for {kept.stale} checks: stopping, keeping step {kept.step}")
                break
    train_seconds = time.perf_counter() - train_started
    kept.restore(module)
    best_step = kept.step
    module = module.to(memory_format=torch.contiguous_format).eval()

    # The temperature: MNIST validation images (never trained on, by the base or here) and the held-out views.
    cal_images = images[mnist_val_idx[: config.calibration_images]]
    cal_x = np.concatenate([cal_images, *val_views])
    cal_y = np.concatenate(
        [
            labels[mnist_val_idx[: config.calibration_images]],
            *[np.full(len(v), label) for v, label in zip(val_views, val_y)],
        ]
    )
    fitted_on = f"{len(cal_images)} MNIST validation images and the {len(val_y)} held-out images' views"
    calibration = calibration_card(_logits(module, cal_x), cal_y, fitted_on)
    val_probs = _file_probabilities(module, val_views, calibration["temperature"])
    val_accuracy = float((val_probs.argmax(1) == val_y).mean())
    log(f"held-out accuracy {before:.1%} -> {val_accuracy:.1%}; temperature {calibration['temperature']:.3f}")

    base_name = base_card.get("name") or base_path.stem
    if not base_card.get("name") and base_path.name == "checkpoint.pt":  # a run: its recipe and folder say which
        base_name = f"{base_card.get('recipe', 'run')} (run {base_path.parent.name})"  # as `evaluate` names it
    card = {key: base_card[key] for key in NETWORK_KEYS if key in base_card}
    if "input" not in card:  # a checkpoint's metadata: the contract every digitrec network follows
        from digitrec.export import build_card

        card = {k: v for k, v in build_card(module, base_card, base_name, None, 0).items() if k in NETWORK_KEYS}
    card.update(
        {
            "name": f"{base_name}-finetuned",
            "calibration": calibration,
            "val_accuracy": val_accuracy,
            "finetune": {
                "base_model": base_name,
                "base_file": base_path.name,
                "base_sha256": file_sha256(base_path),
                "data_sha256": prepared.sha256,
                "images": len(prepared.examples),
                "train_images": len(train_files),
                "val_images": len(val_files),
                "skipped": len(prepared.skipped),
                "val_accuracy_before": before,
                "val_accuracy": val_accuracy,
                "steps": step,
                "best_step": best_step,
                "train_seconds": round(train_seconds, 2),
                "settings": asdict(config),
            },
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "torch": str(torch.__version__),
            **(card_extra or {}),
        }
    )
    # The base kept (no step beat it): it reads numbers as the base did, with the base's digit scorer.
    with scorer_beside(scorer_source if best_step == 0 else None, out, card, log, warn) as scorer:
        if scorer is not None:
            log(f"no step beat the base: it reads numbers as the base did, with its digit scorer {scorer.name}")
        written = _write(module, out, card, [cal_x[:500].astype(np.float32)[:, None] / 255.0], log)
    return {
        "model": written["path"],
        "card_path": written.get("card_path"),
        "images": len(prepared.examples),
        "train_images": len(train_files),
        "val_images": len(val_files),
        "skipped": [[str(p), why] for p, why in prepared.skipped],
        "train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "val_accuracy": val_accuracy,
        "val_accuracy_before": before,
        "temperature": calibration["temperature"],
        "steps": step,
        "best_step": best_step,
        "base_model": base_name,
        "data_sha256": prepared.sha256,
        "reader_digits": scorer and str(scorer),  # the copy of the base's digit scorer, when the base was kept
    }


def batch_shares(config: FinetuneConfig, classes: int) -> tuple[int, int]:
    """(user views, MNIST replay images) per step, for user digits of `classes` different labels:
    `user_batch`, but at most `user_per_class` per class (8 of 64: about one class's share of ten),
    the replay taking the rest. Corrections from the page are often of one or two digits only, and
    twelve corrected zeros at 48 of every 64 taught the network that everything is a zero (MNIST
    validation fell to 744 of 1,000 within six steps), where 8 of 64 learnt them and kept MNIST
    (998). Six classes or more: the recipe the cheque benchmark measured, unchanged."""
    total = config.user_batch + config.replay_batch
    user = min(config.user_batch, max(1, classes) * config.user_per_class)
    return user, total - user


@torch.no_grad()
def _logits(module, digits28: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 10) logits, eval mode."""
    module.eval()
    x = torch.from_numpy(np.ascontiguousarray(digits28)).unsqueeze(1).float().div_(255)
    return torch.cat([module(x[i : i + 1000]) for i in range(0, len(x), 1000)]).numpy()


def _file_probabilities(module, views: list[np.ndarray], temperature: float = 1.0) -> np.ndarray:
    """One probability row per file: softmax(logits / T) averaged over its views, as predict does."""
    from digitrec.modelfile import softmax

    probs = softmax(_logits(module, np.concatenate(views)) / temperature)
    bounds = np.cumsum([0, *map(len, views)])
    return np.stack([probs[a:b].mean(0) for a, b in zip(bounds[:-1], bounds[1:])])


def _write(module, out: Path, card: dict, probes: list[np.ndarray], log) -> dict:
    from digitrec.modelfile.write import torch_reference, torch_to_onnx, write_model

    def export(tmp: Path) -> None:
        torch_to_onnx(
            module, tmp, np.zeros((1, 1, 28, 28), np.float32), {"image": {0: "batch"}, "logits": {0: "batch"}}
        )

    return write_model(out, export=export, probes=probes, reference=torch_reference(module), card=card, log=log)
