"""`train(config, out_dir)`: the training run, top to bottom.

Data: MNIST in memory as one uint8 tensor; 5,000 training images (a fixed split, the same for every
seed) are held out for validation, which is all that recipes are tuned on. The test set is touched
once, after the last epoch, to report `test_accuracy`; nothing is ever chosen by it.

Reproducibility and resume: every epoch draws its shuffling, augmentation and dropout from
generators seeded by (seed, epoch), and the learning rate is a pure function of the step. So a run
killed after epoch k and resumed from its checkpoint (weights, optimizer, EMA) repeats exactly what
the uninterrupted run would have done, and ends with the same weights.

Devices and processes (digitrec.train.device): the data sit on the device as one uint8 tensor; on
CUDA the forward pass runs under bfloat16 autocast. Under `torchrun --nproc-per-node N` each process
takes 1/N of every batch (the same global batch and learning rate as one process) and DDP averages
the gradients; rank 0 alone writes the run folder.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from digitrec import checkpoint as ckpt
from digitrec.data import FILES, load_mnist
from digitrec.errors import DigitrecError
from digitrec.files import atomic_write
from digitrec.models import build_model, count_flops, count_parameters
from digitrec.train.augment import augment_batch
from digitrec.train.config import TrainConfig
from digitrec.train.device import Placement, finish, start
from digitrec.train.distill import Teachers, distill_loss
from digitrec.train.threads import default_threads

SPLIT_SEED = 20240601  # fixes which training images form the validation set, for every run
EVAL_BATCH = 1000


@dataclass
class Callbacks:
    """Hooks the CLI uses for its progress bar; the library itself prints nothing."""

    on_start: Callable[[dict], None] = lambda info: None
    on_batch: Callable[[int, int, float, float], None] = lambda done, total, loss, acc: None
    on_epoch: Callable[[dict], None] = lambda row: None
    # After every optimizer step, with the model being trained (the averaged one when EMA is on).
    # Time spent in on_batch and on_step is not counted as training time (benchmarks evaluate here).
    on_step: Callable[[int, torch.nn.Module], None] = lambda step, model: None


# --- data ------------------------------------------------------------------------------------


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, 28, 28) -> uint8 (N, 1, 28, 28); converted to float one batch at a time."""
    return torch.from_numpy(np.array(images, dtype=np.uint8)).unsqueeze(1)  # a writable copy


def as_float(batch: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, 28, 28), ink = 255 -> float32 in [0, 1], ink = 1 (the model contract)."""
    return batch.float().div_(255)


def split_indices(config: TrainConfig, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """-> (validation, training) indices into the MNIST training images: the fixed split every run,
    export's calibration and finetune's replay use."""
    order = np.random.default_rng(SPLIT_SEED).permutation(n_images)
    if config.limit:
        order = order[: config.limit]
    n_val = min(config.val_size, len(order) // 10) if config.limit else config.val_size
    return order[:n_val], np.sort(order[n_val:])


def split_data(config: TrainConfig, train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray]):
    """-> dict of (images uint8 (N, 1, 28, 28), labels int64) for train / val / test."""
    images, labels = train
    val_idx, train_idx = split_indices(config, len(images))
    test_images, test_labels = test
    if config.limit:
        test_images, test_labels = test_images[: config.limit], test_labels[: config.limit]

    def pack(x, y):
        return to_tensor(x), torch.from_numpy(y.astype(np.int64))

    return {
        "train": pack(images[train_idx], labels[train_idx]),
        "val": pack(images[val_idx], labels[val_idx]),
        "test": pack(test_images, test_labels),
    }


# --- optimisation ----------------------------------------------------------------------------


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, nesterov=True, weight_decay=config.weight_decay
        )
    return torch.optim.Adadelta(params, lr=config.lr, weight_decay=config.weight_decay)


def learning_rate(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """The learning rate for optimizer step `step` (0-based): a pure function, nothing to resume."""
    total = config.epochs * steps_per_epoch
    if config.schedule == "constant":
        return config.lr
    if config.schedule == "step":
        return config.lr * config.step_gamma ** (step // steps_per_epoch)
    # One-cycle: linear warm-up from lr/25 to lr, then cosine down to ~0 (Smith & Topin, 2019).
    warm = max(1, round(config.warmup * total))
    if step < warm:
        return config.lr * (0.04 + 0.96 * step / warm)
    progress = (step - warm) / max(1, total - warm)
    return config.lr * (0.5 * (1 + math.cos(math.pi * min(1.0, progress))) + 1e-4)


class WeightAverage:
    """Exponential moving average of all weights and batch-norm statistics. The decay ramps up
    from 0 over the first steps so that the average is not dominated by the random start."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval()
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for avg, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.lerp_(current, 1 - d)
            else:
                avg.copy_(current)


@torch.no_grad()
def predict_logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 1, 28, 28) -> float32 (N, classes) logits, in eval mode."""
    was_training = model.training
    model.eval()
    out = [model(as_float(images[i : i + EVAL_BATCH])) for i in range(0, len(images), EVAL_BATCH)]
    model.train(was_training)
    return torch.cat(out).float() if out else torch.zeros(0, 10, device=images.device)


def evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> tuple[float | None, float | None]:
    """-> (mean cross-entropy, accuracy); (None, None) for an empty set."""
    if len(labels) == 0:
        return None, None
    logits = predict_logits(model, images)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


# --- the run ---------------------------------------------------------------------------------


def data_hashes() -> dict[str, str]:
    return {spec.name: spec.sha256 for spec in FILES.values()}


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def train(
    config: TrainConfig,
    out_dir: Path | str,
    *,
    resume: bool = False,
    callbacks: Callbacks | None = None,
    data: dict | None = None,
    device: str = "auto",
) -> dict:
    """Train `config` into `out_dir` (checkpoint.pt, metrics.jsonl, config.json) and return a summary:
    recipe, epochs, seed, train_seconds, test_accuracy, test_loss, val_accuracy, checkpoint, ...

    `data` ({'train': (x, y), 'test': (x, y)} of uint8 arrays) defaults to the real MNIST.
    `device`: auto (CUDA when present), cpu, cuda or mps. Started by torchrun, this process is one
    of a DDP run (see digitrec.train.device)."""
    placement = start(device)
    try:
        return _train(config, Path(out_dir), resume, callbacks or Callbacks(), data, placement)
    finally:
        finish(placement)


def _train(
    config: TrainConfig, out_dir: Path, resume: bool, callbacks: Callbacks, data: dict | None, placement: Placement
) -> dict:
    dev, main = placement.device, placement.is_main
    if not main:
        callbacks = Callbacks()  # one process reports
    checkpoint_path = out_dir / ckpt.CHECKPOINT_NAME
    metrics_path = out_dir / ckpt.METRICS_NAME
    torch.set_num_threads(config.threads or default_threads(placement.world))

    state = None
    if resume:
        if not checkpoint_path.is_file():
            raise DigitrecError(f"nothing to resume: {checkpoint_path} does not exist")
        state = ckpt.read_checkpoint(checkpoint_path)
        # Filled with today's defaults, so a run saved before a new setting existed still resumes.
        saved = TrainConfig.from_dict(state["meta"]["config"]).to_dict()
        if saved != config.to_dict():
            raise DigitrecError(
                f"{out_dir} was trained with a different config; resume it with its own "
                f"config ({out_dir / ckpt.CONFIG_NAME}) or start a new run folder"
            )
    elif checkpoint_path.exists() and placement.is_main:  # the others may start before rank 0 clears --force
        raise DigitrecError(
            f"{checkpoint_path} already exists: pass --resume to continue that run, "
            "--force to start it over, or choose another --out"
        )

    # Before the data and the rendered set: a teacher that cannot teach fails in a second, not minutes.
    teachers = None
    if config.distill.teachers:
        teachers = Teachers(config.distill.teachers, int(config.model.get("classes", 10)), dev)
        if state is not None and not teachers.same_as(state["meta"].get("teachers")):
            raise DigitrecError(
                f"the distill teachers of {out_dir} have changed since it was started "
                "(another file at a teacher path); start a new run folder"
            )

    if data is None:
        data = {"train": load_mnist("train"), "test": load_mnist("test")}
    # All of MNIST as uint8 on the device (~55 MB): batches are indexed there, never copied over.
    sets = {name: (x.to(dev), y.to(dev)) for name, (x, y) in split_data(config, data["train"], data["test"]).items()}
    x_train, y_train = sets["train"]
    if config.augment.enabled and config.augment.forms:
        from digitrec.glyph_forms import mnist_with_forms

        redrawn = mnist_with_forms(
            x_train[:, 0].cpu().numpy(), y_train.cpu().numpy(), config.augment.forms, config.seed
        )
        x_train = to_tensor(redrawn).to(dev)
    if config.batch_size % placement.world:
        raise DigitrecError(
            f"batch size {config.batch_size} does not split over {placement.world} processes; "
            f"pass a --batch-size divisible by {placement.world}"
        )
    share = config.batch_size // placement.world  # this process's part of every batch
    # [mix]: that share of every batch comes from the rendered set (uint8 (R, 1, 28, 28), drawn from
    # this run's training split only), the rest from MNIST. An epoch stays one pass over MNIST.
    rendered_share = round(config.mix.rendered * share)
    mnist_share = share - rendered_share
    if rendered_share:
        from digitrec.train.rendered import rendered_set

        rx, ry = rendered_set(config.mix.examples, config.mix.seed, x_train[:, 0].cpu().numpy(), y_train.cpu().numpy())
        x_rendered, y_rendered = to_tensor(rx).to(dev), torch.from_numpy(ry).to(dev)
    steps_per_epoch = len(x_train) // (mnist_share * placement.world)  # the last partial batch is dropped
    if steps_per_epoch == 0:
        raise DigitrecError(f"only {len(x_train)} training images: fewer than one batch of {config.batch_size}")

    torch.manual_seed(config.seed)
    # channels-last runs oneDNN's fast convolution kernels (2-3x faster here); same weights either way.
    model = build_model(config.architecture, **config.model).to(dev, memory_format=torch.channels_last)
    with torch.no_grad():  # eval mode: no batch-norm statistics move, no random numbers drawn
        outputs = model.eval()(torch.zeros(1, 1, 28, 28, device=dev)).shape[-1]
    if len(y_train) and int(y_train.max()) >= outputs:  # `[model] classes = 5` for digits 0-9: a traceback mid-batch
        raise DigitrecError(f"the model gives {outputs} outputs but the labels go up to {int(y_train.max())}")
    meta = {
        "recipe": config.recipe,
        "architecture": config.architecture,
        "config": config.to_dict(),
        "seed": config.seed,
        "epoch": 0,
        "epochs": config.epochs,
        "parameters": count_parameters(model),
        "flops_per_image": count_flops(model),
        "train_images": len(x_train),
        "rendered_images": len(x_rendered) if rendered_share else 0,
        "val_images": len(sets["val"][1]),
        "train_seconds": 0.0,
        "val_accuracy": None,
        "test_accuracy": None,
        "test_loss": None,
        "history": [],
        "commit": ckpt.source_commit(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data_sha256": data_hashes(),
        "torch": str(torch.__version__),
        "threads": torch.get_num_threads(),
        "device": dev.type,
        "processes": placement.world,
    }
    if teachers is not None:
        meta["teachers"] = teachers.record
    optimizer = make_optimizer(config, model)
    average = WeightAverage(model, config.ema) if config.ema else None
    if state is not None:
        model.load_state_dict(state["train_state"]["weights"])
        optimizer.load_state_dict(state["train_state"]["optimizer"])
        if average is not None:
            average.model.load_state_dict(state["train_state"]["ema"])
        meta.update(
            {
                k: state["meta"][k]
                for k in (
                    "epoch",
                    "train_seconds",
                    "history",
                    "created",
                    "commit",
                    "val_accuracy",
                    "test_accuracy",
                    "test_loss",
                )
            }
        )
    elif main:
        out_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(out_dir / ckpt.CONFIG_NAME, json.dumps(config.to_dict(), indent=2) + "\n")
    if main:  # metrics.jsonl always mirrors the checkpoint's history (a kill may have come between the two)
        atomic_write(metrics_path, "".join(json.dumps(row) + "\n" for row in meta["history"]))
    stepped = model
    if placement.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        # Starts every process from rank 0's weights; averages the gradients in backward().
        stepped = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)

    final = average.model if average else model
    callbacks.on_start({**meta, "steps_per_epoch": steps_per_epoch, "start_epoch": meta["epoch"] + 1})

    for epoch in range(meta["epoch"] + 1, config.epochs + 1):
        if not config.threads:  # auto: a neighbour may have come or gone since the last epoch
            torch.set_num_threads(default_threads(placement.world))
        started = time.perf_counter()
        gen = _epoch_generator(config.seed, epoch)  # the order: the same in every process
        # Augmentation: one process draws from `gen` itself (as it always has); in a DDP run each
        # process gets its own stream, so the processes' images are not distorted alike.
        aug_gen = gen if placement.world == 1 else _epoch_generator(config.seed + 7919 * (placement.rank + 1), epoch)
        torch.manual_seed(config.seed * 100_003 + epoch + 7919 * placement.rank)  # dropout
        # Which rendered views each batch takes: a stream of its own, so [mix] leaves the MNIST draws alone.
        mix_gen = _epoch_generator(config.seed + 104_729 * (placement.rank + 1), epoch)
        model.train()
        order = torch.randperm(len(x_train), generator=gen).to(dev)
        loss_sum = correct = seen = 0.0
        outside = 0.0  # seconds spent in callbacks, left out of the training time
        for b in range(steps_per_epoch):
            step = (epoch - 1) * steps_per_epoch + b
            start_at = (b * placement.world + placement.rank) * mnist_share
            idx = order[start_at : start_at + mnist_share]
            y = y_train[idx]
            x = augment_batch(as_float(x_train[idx]), config.augment, aug_gen, y)
            if rendered_share:  # already distorted and prepared as predict prepares: not augmented again
                pick = torch.randint(len(y_rendered), (rendered_share,), generator=mix_gen).to(dev)
                x, y = torch.cat([x, as_float(x_rendered[pick])]), torch.cat([y, y_rendered[pick]])
            x = x.contiguous(memory_format=torch.channels_last)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, step, steps_per_epoch)
            with placement.autocast():
                logits = stepped(x)
                loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
                if teachers is not None:  # taught on exactly the (augmented, mixed) batch the network sees
                    temperature, alpha = config.distill.temperature, config.distill.alpha
                    kd = distill_loss(logits, teachers.soft_targets(x, temperature), temperature)
                    loss = (1 - alpha) * loss + alpha * kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if average is not None:
                average.update(model, step)
            loss_sum += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            paused = time.perf_counter()
            callbacks.on_batch(b + 1, steps_per_epoch, loss_sum / seen, correct / seen)
            callbacks.on_step(step + 1, final)
            outside += time.perf_counter() - paused
        if placement.world > 1:  # the epoch's loss and accuracy over all processes' images
            import torch.distributed as dist

            totals = torch.tensor([loss_sum, correct, seen], dtype=torch.float64, device=dev)
            dist.all_reduce(totals)
            loss_sum, correct, seen = totals.tolist()
        val_loss, val_acc = evaluate(final, *sets["val"])
        meta["train_seconds"] += time.perf_counter() - started - outside
        row = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(meta["train_seconds"], 3),
        }
        meta["history"].append(row)
        meta["epoch"] = epoch
        meta["val_accuracy"] = val_acc
        if main:
            _save(checkpoint_path, final, model, optimizer, average, meta)
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
        callbacks.on_epoch(row)

    if meta["test_accuracy"] is None:  # measured once, when the last epoch is done
        meta["test_loss"], meta["test_accuracy"] = evaluate(final, *sets["test"])
        if main:
            _save(checkpoint_path, final, model, optimizer, average, meta)
    return {
        "recipe": config.recipe,
        "epochs": config.epochs,
        "seed": config.seed,
        "train_seconds": round(meta["train_seconds"], 3),
        "test_accuracy": meta["test_accuracy"],
        "test_loss": meta["test_loss"],
        "val_accuracy": meta["val_accuracy"],
        "rendered_images": meta["rendered_images"],
        "parameters": meta["parameters"],
        "flops_per_image": meta["flops_per_image"],
        "checkpoint": str(checkpoint_path),
        "run_dir": str(out_dir),
    }


def _save(path: Path, final, model, optimizer, average, meta: dict) -> None:
    train_state = {"weights": model.state_dict(), "optimizer": optimizer.state_dict()}
    if average is not None:
        train_state["ema"] = average.model.state_dict()
    ckpt.save_checkpoint(path, {"model": final.state_dict(), "meta": meta, "train_state": train_state})
