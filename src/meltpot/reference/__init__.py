"""Reference engines: label frames with energy, forces and stress, and run MD.

``make_engine(config["reference"], elements, units)`` builds the engine a config names.
"""

from .base import MDSegment, ReferenceEngine, make_engine

__all__ = ["MDSegment", "ReferenceEngine", "make_engine"]
