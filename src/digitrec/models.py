"""The networks, and a dict from architecture name to builder. No training here.

Every digit model takes float32 (N, 1, 28, 28) in [0, 1], ink = 1 on black (MNIST polarity), and
returns (N, 10) logits; the reader's line model (`LineCNN`) takes a line 32 px tall and returns logits
per column. The MNIST mean/std normalisation happens inside `forward` (a `Normalize` layer with
buffers), so it travels into the ONNX file and no runtime ever hard-codes it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from digitrec.read.line_reader import HEIGHT as LINE_HEIGHT

# Mean and standard deviation of MNIST training pixels scaled to [0, 1].
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class Normalize(nn.Module):
    def __init__(self, mean: float = MNIST_MEAN, std: float = MNIST_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean))
        self.register_buffer("std", torch.tensor(std))

    def forward(self, x):
        return (x - self.mean) / self.std


class MLP(nn.Module):
    """The classic beginner network: 784 -> 50 -> 50 -> 10, ReLU."""

    def __init__(self, hidden: int = 50):
        super().__init__()
        self.net = nn.Sequential(
            Normalize(),
            nn.Flatten(),
            nn.Linear(784, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 10),
        )

    def forward(self, x):
        return self.net(x)


def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> list[nn.Module]:
    # No conv bias: batch norm's shift does its job.
    return [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class FastCNN(nn.Module):
    """Two strided convolutions and a linear layer: ~51k parameters, built to be trained in seconds."""

    def __init__(self, channels: tuple[int, int] = (32, 64)):
        super().__init__()
        c1, c2 = channels
        self.net = nn.Sequential(
            Normalize(),
            *conv_bn(1, c1, 5, stride=2),  # (N, c1, 14, 14)
            *conv_bn(c1, c2, 3, stride=2),  # (N, c2, 7, 7)
            nn.Flatten(),
            nn.Linear(c2 * 49, 10),
        )

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    """Compact VGG-style CNN for CPU: stages of 3x3 conv + BN + ReLU at 28, 14 and 7 px, max-pool
    between stages, global max-pool and one linear layer (no big dense layer).

    `channels[i]` is the width of stage i and `depth[i]` how many convolutions it has; `classes`
    is 10, or 11 for the reader's segmentation verifier (the digits and "not one digit").
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (32, 64, 128),
        depth: tuple[int, ...] = (1, 2, 2),
        dropout: float = 0.0,
        classes: int = 10,
    ):
        super().__init__()
        if len(channels) != len(depth):
            raise ValueError("channels and depth need one entry per stage")
        layers: list[nn.Module] = [Normalize()]
        c_in = 1
        for stage, (width, n) in enumerate(zip(channels, depth)):
            if stage > 0:
                layers.append(nn.MaxPool2d(2))  # 28 -> 14 -> 7 -> 3
            for _ in range(n):
                layers += conv_bn(c_in, width)
                c_in = width
        layers += [nn.AdaptiveMaxPool2d(1), nn.Flatten()]
        if dropout:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(c_in, classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class ReferenceCNN(nn.Module):
    """pytorch/examples' MNIST network, kept as an outside reference for the benchmark:
    conv32 - conv64 - maxpool - dropout 0.25 - fc128 - dropout 0.5 - fc10."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            Normalize(),
            nn.Conv2d(1, 32, 3),
            nn.ReLU(),  # (N, 32, 26, 26)
            nn.Conv2d(32, 64, 3),
            nn.ReLU(),  # (N, 64, 24, 24)
            nn.MaxPool2d(2),
            nn.Dropout(0.25),
            nn.Flatten(),  # (N, 9216)
            nn.Linear(9216, 128),
            nn.ReLU(),
            nn.Dropout(0.5),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.net(x)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "fastcnn": FastCNN,
    "cnn": CNN,
    "reference": ReferenceCNN,
}


class LineCNN(nn.Module):
    """The reader's line model (`digitrec.train.line_reader`): float32 (N, 1, 32, W) in [0, 1], ink = 1
    -> (N, W / 4, classes) logits per 4-px column: the line reader's alphabet, then the CTC blank."""

    def __init__(self, classes: int, channels: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            Normalize(),
            *conv_bn(1, c1),
            nn.MaxPool2d(2),  # 16 x W/2
            *conv_bn(c1, c2),
            nn.MaxPool2d(2),  # 8 x W/4
            *conv_bn(c2, c3),
            *conv_bn(c3, c3),
            nn.MaxPool2d((2, 1)),  # 4 x W/4
            nn.Conv2d(c3, 2 * c3, (LINE_HEIGHT // 8, 1), bias=False),
            nn.BatchNorm2d(2 * c3),
            nn.ReLU(),  # 1 x W/4
        )
        self.along = nn.Sequential(
            nn.Conv1d(2 * c3, 2 * c3, 5, padding=2, bias=False),
            nn.BatchNorm1d(2 * c3),
            nn.ReLU(),
            nn.Conv1d(2 * c3, 2 * c3, 5, padding=2, bias=False),
            nn.BatchNorm1d(2 * c3),
            nn.ReLU(),
            nn.Conv1d(2 * c3, classes, 1),
        )

    def forward(self, x):
        columns = self.features(x).squeeze(2)  # (N, C, W/4)
        return self.along(columns).permute(0, 2, 1)


class LineEnsemble(nn.Module):
    """Several line readers as one: (N, 1, 32, W) -> (N, W / 4, classes) log of the members' mean
    probabilities (valid logits, so the runtime reads it like one model)."""

    def __init__(self, members: list[nn.Module]):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x):
        log_probs = torch.stack([m(x).log_softmax(-1) for m in self.members])
        return torch.logsumexp(log_probs, dim=0) - math.log(len(self.members))


def build_model(architecture: str, **kwargs) -> nn.Module:
    """Architecture name and its keyword arguments (from the recipe's [model] table) -> a fresh model."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose one of {', '.join(ARCHITECTURES)}")
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    return ARCHITECTURES[architecture](**kwargs)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module) -> int:
    """FLOPs for one 28x28 image: 2 x the multiply-accumulates of every Conv2d and Linear layer.
    (Batch norm, activations and pooling add well under 1% and are left out, as is usual.)"""
    macs = 0

    def conv_hook(module: nn.Conv2d, inputs, output):
        nonlocal macs
        k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
        macs += output[0].numel() * k

    def linear_hook(module: nn.Linear, inputs, output):
        nonlocal macs
        macs += module.in_features * module.out_features

    hooks = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, 1, 28, 28))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return 2 * macs


def describe(model: nn.Module) -> str:
    """One line per layer, without the Normalize detail: goes into the model card."""
    return str(model)
