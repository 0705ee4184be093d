"""Sampling: state grids, initial structures and MD protocols that make labelled frames."""
