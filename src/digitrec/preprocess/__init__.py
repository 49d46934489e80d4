"""Image files -> the 28x28 MNIST form. OpenCV and numpy only: no torch, no plotting."""

from digitrec.preprocess.digit import normalize_digit
from digitrec.preprocess.load import load_grey

__all__ = ["load_grey", "normalize_digit"]
