"""Training: recipes (config.py), batched augmentation (augment.py) and the run itself (loop.py)."""

from digitrec.train import threads as _threads

_threads.prefer_passive_waiting()  # before loop.py imports torch (see digitrec.train.threads)

from digitrec.train.config import AugmentConfig, TrainConfig, load_recipe  # noqa: E402
from digitrec.train.loop import Callbacks, train  # noqa: E402

__all__ = ["AugmentConfig", "Callbacks", "TrainConfig", "load_recipe", "train"]
