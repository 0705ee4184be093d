"""Behler–Parrinello atom-centred symmetry functions: feature sets, neighbour search,
vectorised PyTorch evaluation (with autograd forces/stress), and the HDF5 cache."""

from .featureset import FeatureSet, SymmetryFunction, load_featureset

__all__ = ["FeatureSet", "SymmetryFunction", "load_featureset"]
