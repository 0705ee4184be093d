"""High-dimensional neural network potentials (Behler–Parrinello HDNNP)."""

from .hdnnp import HDNNP
from .modelfile import load_model, save_model

__all__ = ["HDNNP", "load_model", "save_model"]
