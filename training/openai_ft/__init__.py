"""OpenAI fine-tuning jobs, the optional legacy path: upload, train, track, register.

OpenAI has closed self-serve fine-tuning to new users and is retiring it
(`training.dataset.estimate.OPENAI_WIND_DOWN_NOTE`); local LoRA training is the main path.
This package is for accounts that can still fine-tune, and is off unless the caller allows
uploads (the CLI passes `Settings.openai_fine_tuning`).

- `dataset.py` checks a dataset before anything of it is uploaded (scrubbed, unchanged);
- `cost.py` estimates what a job costs; `config.py` is what a job is asked to do;
- `client.py` makes the client and turns its errors into `errors.py`'s;
- `store.py` keeps every job in the `openai_jobs` table, so tracking survives restarts;
- `jobs.py` (`OpenAIJobs`) starts, polls, watches and cancels jobs and registers their models.
"""

from training.dataset.estimate import OPENAI_WIND_DOWN_NOTE
from training.openai_ft.client import openai_client, require_upload_allowed
from training.openai_ft.config import DEFAULT_MODEL, OpenAIJobConfig, default_suffix
from training.openai_ft.cost import CostEstimate, auto_epochs, estimate_cost
from training.openai_ft.dataset import OpenAIDataset, load_dataset
from training.openai_ft.errors import (
    FineTuningDisabledError,
    OpenAIAuthError,
    OpenAIFineTuningError,
    OpenAINotConfiguredError,
    OpenAIRequestError,
    OpenAIUnavailableError,
    UnknownJobError,
    UnscrubbedDatasetError,
)
from training.openai_ft.jobs import JobEvent, OpenAIJobs, PollResult, RemoteJob
from training.openai_ft.store import TERMINAL_STATUSES, JobStore, TrackedJob

__all__ = [  # noqa: RUF022 (plain sorted(), as tests/test_public_api.py checks)
    "CostEstimate",
    "DEFAULT_MODEL",
    "FineTuningDisabledError",
    "JobEvent",
    "JobStore",
    "OPENAI_WIND_DOWN_NOTE",
    "OpenAIAuthError",
    "OpenAIDataset",
    "OpenAIFineTuningError",
    "OpenAIJobConfig",
    "OpenAIJobs",
    "OpenAINotConfiguredError",
    "OpenAIRequestError",
    "OpenAIUnavailableError",
    "PollResult",
    "RemoteJob",
    "TERMINAL_STATUSES",
    "TrackedJob",
    "UnknownJobError",
    "UnscrubbedDatasetError",
    "auto_epochs",
    "default_suffix",
    "estimate_cost",
    "load_dataset",
    "openai_client",
    "require_upload_allowed",
]
