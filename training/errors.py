"""Errors raised by the training package; one base class so callers can catch them all."""

from __future__ import annotations


class TrainingError(Exception):
    """Base class for every error raised by `training`."""


class DatasetError(TrainingError):
    """A dataset cannot be built or written as asked (no persona turns, bad settings...)."""
