"""The OpenAI fine-tuning path's errors; each says what to do about it."""

from __future__ import annotations

from training.errors import TrainingError

__all__ = [
    "FineTuningDisabledError",
    "OpenAIAuthError",
    "OpenAIFineTuningError",
    "OpenAINotConfiguredError",
    "OpenAIRequestError",
    "OpenAIUnavailableError",
    "UnknownJobError",
    "UnscrubbedDatasetError",
]


class OpenAIFineTuningError(TrainingError):
    """Base class of the OpenAI fine-tuning errors."""


class FineTuningDisabledError(OpenAIFineTuningError):
    """Uploading training data to OpenAI is not allowed by the settings."""


class OpenAINotConfiguredError(OpenAIFineTuningError):
    """No OpenAI API key is configured."""


class UnscrubbedDatasetError(OpenAIFineTuningError):
    """The dataset was built without scrubbing, or changed after its card was written."""


class UnknownJobError(OpenAIFineTuningError):
    """No stored job has this id."""


class OpenAIAuthError(OpenAIFineTuningError):
    """OpenAI refused the key (401) or the request for this account (403)."""


class OpenAIUnavailableError(OpenAIFineTuningError):
    """OpenAI could not be reached (network, timeout)."""


class OpenAIRequestError(OpenAIFineTuningError):
    """OpenAI answered with an error (bad request, not found, rate limit, server error)."""
