"""The bookkeeping both fine-tuning runs share (the digit model's, `tune.run`, and the line
reader's, `tune.line`): a cosine learning rate, and early stopping that keeps the best checked
weights. With a few dozen of the user's images a later step is often worse than an earlier one,
so the weights of the best check are kept, the base's own (step 0) included."""

from __future__ import annotations

import copy
import math

import torch


def cosine_lr(optimizer: torch.optim.Optimizer, peak: float, step: int, steps: int) -> None:
    """Step `step` of `steps` (from 1): the learning rate goes from `peak` down to 0 on a half cosine."""
    for group in optimizer.param_groups:
        group["lr"] = peak * 0.5 * (1 + math.cos(math.pi * (step - 1) / steps))


class BestCheck:
    """The best score seen at a check and the weights that gave it. A score is a tuple: first what
    the base must not forget (generated numbers, MNIST validation digits), then the held-out
    user data's measures, compared in order. A check wins when it beats the best on the held-out
    measures and has not lost more than `forget` of the first; the base's score is the first
    best. `offer` returns True when `patience` checks in a row brought nothing better: stop."""

    def __init__(self, module: torch.nn.Module, base: tuple, forget: float, patience: int):
        self.base = self.best = base
        self.step, self.stale = 0, 0
        self._forget, self._patience = forget, patience
        self._state = copy.deepcopy(module.state_dict())

    def offer(self, module: torch.nn.Module, now: tuple, step: int) -> bool:
        if now[0] >= self.base[0] - self._forget and now[1:] > self.best[1:]:
            self.best, self.step, self.stale = now, step, 0
            self._state = copy.deepcopy(module.state_dict())
            return False
        self.stale += 1
        return self.stale >= self._patience

    def restore(self, module: torch.nn.Module) -> None:
        """Put the best weights back into `module`."""
        module.load_state_dict(self._state)
