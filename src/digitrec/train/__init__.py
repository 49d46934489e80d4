"""Training: recipes (config.py), batched augmentation (augment.py) and the run itself (loop.py)."""

from digitrec.train.config import AugmentConfig, TrainConfig, load_recipe
from digitrec.train.loop import Callbacks, train

__all__ = ["AugmentConfig", "Callbacks", "TrainConfig", "load_recipe", "train"]
