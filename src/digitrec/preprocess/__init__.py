"""Image files -> the 28x28 MNIST form. OpenCV, Pillow and numpy only: no torch, no plotting."""

from digitrec.preprocess.digit import fit_and_centre, normalize_digit
from digitrec.preprocess.load import load_grey

__all__ = ["fit_and_centre", "load_grey", "normalize_digit"]
