"""The model registry: every architecture honours the contract; parameter and FLOP counts are right."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from digitrec.models import ARCHITECTURES, MNIST_MEAN, MNIST_STD, Normalize, build_model, count_flops, count_parameters
from digitrec.train.config import RECIPES, load_recipe


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_maps_images_to_ten_logits(architecture):
    torch.manual_seed(0)
    model = build_model(architecture).eval()
    x = torch.rand(3, 1, 28, 28)
    with torch.no_grad():
        logits = model(x)
    assert logits.shape == (3, 10) and logits.dtype == torch.float32 and torch.isfinite(logits).all()
    # The normalisation is a layer of the model, so it travels into the ONNX graph.
    assert any(isinstance(m, Normalize) for m in model.modules())


@pytest.mark.parametrize("recipe", RECIPES)
def test_every_recipe_builds_its_model(recipe):
    config = load_recipe(recipe)
    model = build_model(config.architecture, **config.model)
    assert count_parameters(model) > 10_000 and count_flops(model) > 0


def test_the_mlp_is_the_classic_784_50_50_10_network():
    model = build_model("mlp")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(784, 50), (50, 50), (50, 10)]
    assert count_parameters(model) == 784 * 50 + 50 + 50 * 50 + 50 + 50 * 10 + 10  # 42,310
    assert count_flops(model) == 2 * (784 * 50 + 50 * 50 + 50 * 10)  # 84,400


def test_flops_of_a_convolution_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 28 * 28, 10))
    # conv: 8 output channels x 784 positions x 9 taps; linear: 6272 x 10; 2 FLOPs per multiply-add.
    assert count_flops(model) == 2 * (8 * 784 * 9 + 6272 * 10)


def test_normalize_uses_the_mnist_statistics():
    x = torch.full((1, 1, 28, 28), MNIST_MEAN + MNIST_STD)
    assert torch.allclose(Normalize()(x), torch.ones_like(x))


def test_unknown_architecture_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown architecture 'resnet'"):
        build_model("resnet")
