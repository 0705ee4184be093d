"""Frames: labelled configurations, their import/export, validation, index and splits."""
