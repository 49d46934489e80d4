"""Training settings: one dataclass, defaults = the `cnn` recipe. A recipe TOML file overrides the
defaults, command-line flags override the file, and the resolved config is saved with the run.

    cfg = load_recipe("fast", overrides={"epochs": 3, "augment.enabled": False})
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitrec import paths
from digitrec.errors import DataError, DigitrecError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

RECIPES = paths.RECIPES
DEFAULT_RECIPE = "cnn"


@dataclass
class AugmentConfig:
    """Batched random distortions (see `augment.py`). Angles in degrees, shifts in pixels."""

    enabled: bool = True
    rotate: float = 10.0  # uniform in [-rotate, rotate] degrees
    scale: float = 0.10  # zoom factor uniform in [1 - scale, 1 + scale]
    shear: float = 0.15  # shear factor uniform in [-shear, shear]
    translate: float = 2.0  # pixels, uniform in [-translate, translate] on each axis
    stretch: float = 0.15  # aspect ratio: width factor exp(U(-stretch, stretch)), height the inverse
    fill_p: float = 0.10  # probability of stretching the digit to fill the 20x20 box (semeion/optdigits)
    stroke_p: float = 0.30  # probability of thickening or thinning the strokes
    stroke_px: float = 1.0  # most pixels added to (or taken from) the stroke width, at 28x28
    glyph_p: float = 0.2  # probability that a '1' gets a flag or foot, a '7' a crossbar
    # share of the training 1s, 2s, 4s, 7s and 9s redrawn once, before training, in a form real
    # writers use (`glyph_forms.mnist_with_forms`: flagged 1s, looped 2s, open 4s, crossed 7s...)
    forms: float = 0.0
    elastic_p: float = 0.0  # probability of an elastic distortion (Simard et al. 2003)
    elastic_px: float = 1.5  # its largest displacement in pixels
    p: float = 1.0  # probability that an image gets the affine part at all


@dataclass
class MixConfig:
    """Real-looking digits in every batch (see `rendered.py`): MNIST training digits drawn as
    photos, scans, pens and cheque cuts, then prepared exactly as `predict` prepares an image."""

    rendered: float = 0.0  # share of each batch taken from the rendered set; 0 = MNIST only
    examples: int = 60000  # size of the rendered set (made once, cached in the data folder)
    seed: int = 0  # draws the rendered set (not the run's seed: runs of any seed share one set)


@dataclass
class DistillConfig:
    """Knowledge distillation (Hinton et al. 2015): the network also learns to match the averaged
    softened outputs of finished runs (its teachers) on exactly the batches it trains on."""

    # checkpoint.pt files (or run folders) of `digitrec train` runs; relative paths resolve against
    # the current directory. Empty = off.
    teachers: list[str] = field(default_factory=list)
    alpha: float = 0.7  # weight of the distillation term; the label loss gets 1 - alpha
    temperature: float = 3.0  # both sides' logits are divided by it before the softmax


@dataclass
class TrainConfig:
    recipe: str = DEFAULT_RECIPE
    architecture: str = "cnn"  # a key of digitrec.models.ARCHITECTURES
    model: dict[str, Any] = field(default_factory=lambda: {"channels": [32, 64, 128], "depth": [1, 2, 2]})
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adamw"  # adamw | adam | sgd | adadelta
    lr: float = 3e-3  # peak learning rate of the schedule
    weight_decay: float = 0.05  # decoupled (AdamW): multiplied by the learning rate
    momentum: float = 0.9  # sgd only
    schedule: str = "onecycle"  # onecycle | constant | step
    warmup: float = 0.2  # onecycle: fraction of the steps spent rising to the peak
    step_gamma: float = 0.7  # step: lr multiplied by this after every epoch
    label_smoothing: float = 0.1
    ema: float = 0.998  # decay of the exponential moving average of the weights; 0 = off
    val_size: int = 5000  # images held out from the 60,000 for validation; 0 = train on all
    seed: int = 0
    threads: int = 0  # torch.set_num_threads; 0 = the cores not busy elsewhere (train.threads)
    limit: int = 0  # use only this many training images (and as many test images); 0 = all
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)

    def to_dict(self) -> dict:
        """Plain JSON-able dict (what the checkpoint and the model card store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        return apply_overrides(cls(), values, source="config")


SECTIONS = ("augment", "mix", "distill")  # the TOML tables that are dataclasses of their own


def share(value: Any, name: str, whose: str) -> float:
    """A setting that is a share of the examples (a probability) -> float. DataError naming it
    unless a real number in [0, 1]: a string, true/false and NaN (TOML has `nan`) are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise DataError(f"{whose} setting {name} must be in [0, 1], got {value!r}")
    return float(value)


def _flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """{'augment': {'rotate': 5}} -> {'augment.rotate': 5}; the `model` table stays one value."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict) and key in SECTIONS:
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def apply_overrides(config: TrainConfig, values: dict, source: str) -> TrainConfig:
    """A copy of `config` with `values` applied; keys may be nested dicts or dotted ('augment.p').
    Unknown keys and values of the wrong type raise a DigitrecError that names `source`."""
    config = dataclasses.replace(
        config,
        augment=dataclasses.replace(config.augment),
        mix=dataclasses.replace(config.mix),
        distill=dataclasses.replace(config.distill, teachers=list(config.distill.teachers)),
        model=dict(config.model),
    )
    for key, value in _flatten(values).items():
        section, dot, rest = key.partition(".")
        target, name = (getattr(config, section), rest) if dot and section in SECTIONS else (config, key)
        fields = {f.name: f for f in dataclasses.fields(target)}
        if name not in fields or (target is config and name in SECTIONS):
            raise DigitrecError(f"{source}: unknown setting {key!r}; known: {', '.join(_known_keys())}")
        current = getattr(target, name)
        setattr(target, name, _coerce(value, current, key, source))
    return config


def _coerce(value: Any, current: Any, key: str, source: str) -> Any:
    """Check (and gently convert) a value to the type of the field's current value."""
    kind = type(current)
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError(value)
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if kind is dict:
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
        if kind is list:  # only distill.teachers: a list of paths
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(value)
            return list(value)
        if kind is str:
            if not isinstance(value, str):
                raise ValueError(value)
            return value
    except (TypeError, ValueError):
        what = {"int": "a whole number", "float": "a number", "bool": "true or false", "str": "text"}.get(
            kind.__name__, f"a {kind.__name__}"
        )
        raise DigitrecError(f"{source}: {key} must be {what}, got {value!r}") from None
    return value


def _known_keys() -> list[str]:
    top = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in SECTIONS]
    return (
        top
        + [f"augment.{f.name}" for f in dataclasses.fields(AugmentConfig)]
        + [f"mix.{f.name}" for f in dataclasses.fields(MixConfig)]
        + [f"distill.{f.name}" for f in dataclasses.fields(DistillConfig)]
    )


def recipe_path(name: str) -> Path:
    return paths.configs_dir() / f"{name}.toml"


def read_toml(path: Path | str) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise DigitrecError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise DigitrecError(f"{path}: not valid TOML ({exc})") from None


def load_recipe(
    name: str = DEFAULT_RECIPE, config_file: Path | str | None = None, overrides: dict | None = None
) -> TrainConfig:
    """Defaults <- recipes/NAME.toml <- config_file (if any) <- overrides (flags)."""
    path = recipe_path(name)
    if not path.is_file():
        raise DigitrecError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)} (or pass --config FILE)")
    config = apply_overrides(TrainConfig(), {"recipe": name, **read_toml(path)}, source=str(path))
    if config_file is not None:
        config = apply_overrides(config, read_toml(config_file), source=str(config_file))
    if overrides:
        config = apply_overrides(config, overrides, source="command line")
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    from digitrec.models import ARCHITECTURES

    problems = []
    if config.architecture not in ARCHITECTURES:
        problems.append(f"architecture must be one of {', '.join(ARCHITECTURES)}")
    if config.epochs < 1:
        problems.append("epochs must be at least 1")
    # torch's generators overflow past 2**64 and numpy's take no negative seed: a traceback each.
    for name, seed in (("seed", config.seed), ("mix.seed", config.mix.seed)):
        if not 0 <= seed < 2**32:
            problems.append(f"{name} must be between 0 and {2**32 - 1:,}")
    if config.batch_size < 1:
        problems.append("batch_size must be at least 1")
    if config.optimizer not in ("adamw", "adam", "sgd", "adadelta"):
        problems.append("optimizer must be adamw, adam, sgd or adadelta")
    if config.schedule not in ("onecycle", "constant", "step"):
        problems.append("schedule must be onecycle, constant or step")
    if not 0 <= config.ema < 1:
        problems.append("ema must be in [0, 1)")
    if config.val_size < 0 or config.val_size >= 60000:
        problems.append("val_size must be between 0 and 59,999")
    if config.limit < 0:
        problems.append("limit must be 0 (all) or a positive number of images")
    if not 0 <= config.mix.rendered < 1:
        problems.append("mix.rendered must be in [0, 1)")
    if not 0 <= config.augment.forms <= 1:
        problems.append("augment.forms must be in [0, 1]")
    if config.mix.rendered and config.mix.examples < 1:
        problems.append("mix.examples must be at least 1 when mix.rendered is on")
    if config.distill.teachers and not 0 <= config.distill.alpha <= 1:
        problems.append("distill.alpha must be in [0, 1]")
    if config.distill.teachers and config.distill.temperature <= 0:
        problems.append("distill.temperature must be above 0")
    problems += _range_problems(config)
    if config.architecture in ARCHITECTURES and not problems:
        problems += _model_problems(config)
    if problems:
        raise DigitrecError("bad training config: " + "; ".join(problems))


# (setting, lowest, highest, whether the highest itself is allowed): the numbers torch and the
# augmentation take without complaint but that make no sense (a negative warm-up trained; augment
# p=3, scale=5 trained a model to 20% accuracy) or that torch refuses mid-run with a traceback.
RANGES = (
    ("weight_decay", 0.0, math.inf, False),
    ("momentum", 0.0, 1.0, False),
    ("warmup", 0.0, 1.0, False),
    ("step_gamma", 0.0, 1.0, True),
    ("label_smoothing", 0.0, 1.0, False),
    ("threads", 0, 4096, True),
    ("augment.rotate", 0.0, 180.0, True),
    ("augment.scale", 0.0, 1.0, False),
    ("augment.shear", 0.0, 1.0, True),
    ("augment.translate", 0.0, 14.0, True),
    ("augment.stretch", 0.0, 1.0, True),
    ("augment.fill_p", 0.0, 1.0, True),
    ("augment.stroke_p", 0.0, 1.0, True),
    ("augment.stroke_px", 0.0, 4.0, True),
    ("augment.glyph_p", 0.0, 1.0, True),
    ("augment.elastic_p", 0.0, 1.0, True),
    ("augment.elastic_px", 0.0, 14.0, True),
    ("augment.p", 0.0, 1.0, True),
)


def _range_problems(config: TrainConfig) -> list[str]:
    problems = []
    for key, low, high, high_ok in RANGES:
        section, _, name = key.rpartition(".")
        value = getattr(getattr(config, section) if section else config, name)
        if not math.isfinite(value) or value < low or value > high or (value == high and not high_ok):
            upper = "" if high == math.inf else f", {high:g}{']' if high_ok else ')'}"
            where = f"[{low:g}{upper}" if upper else f"at least {low:g}"
            problems.append(f"{key} must be {'in ' if upper else ''}{where}, got {value!r}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        problems.append(f"lr must be a number above 0, got {config.lr!r}")
    return problems


def _model_problems(config: TrainConfig) -> list[str]:
    """Build the network once: a `model` table it cannot take ({chanels=...}, channels=[]) is
    named here, not as a constructor's traceback after the data has loaded (or after --force
    cleared the run folder)."""
    import warnings

    import torch

    from digitrec.models import build_model

    try:
        # One 28x28 image through it too: a zero-width stage fails only there (torch warns of the
        # empty layer first: not shown, the error says it).
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_model(config.architecture, **config.model).eval()(torch.zeros(1, 1, 28, 28))
    except (TypeError, ValueError, IndexError, RuntimeError, ZeroDivisionError) as exc:
        return [f"model {config.model} does not fit architecture {config.architecture!r} ({exc})"]
    return []  # how many outputs it needs depends on the labels (the rejector has 4): `loop` checks
