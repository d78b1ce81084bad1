"""The OpenAI client: made from the settings' key, the upload switch, and its errors as ours."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from training.openai_ft.errors import (
    FineTuningDisabledError,
    OpenAIAuthError,
    OpenAINotConfiguredError,
    OpenAIRequestError,
    OpenAIUnavailableError,
)

if TYPE_CHECKING:
    import openai

__all__ = ["openai_client", "openai_errors", "require_upload_allowed"]

_KEY_HINT = "WA_PERSONA_OPENAI_API_KEY"


def openai_client(
    api_key: str | None,
    base_url: str | None = None,
    *,
    timeout: float = 120.0,
    max_retries: int = 2,
) -> openai.OpenAI:
    """The OpenAI client for these settings; `OpenAINotConfiguredError` without a key."""
    import openai  # here, not at the top: listing stored jobs needs no client

    if not api_key:
        raise OpenAINotConfiguredError(f"no OpenAI API key; set {_KEY_HINT} (a dry run needs none)")
    return openai.OpenAI(
        api_key=api_key, base_url=base_url, timeout=timeout, max_retries=max_retries
    )


def require_upload_allowed(allowed: bool) -> None:
    """Raise `FineTuningDisabledError` unless the settings allow uploads to OpenAI."""
    if not allowed:
        raise FineTuningDisabledError(
            "uploading training data to OpenAI is off (a legacy path: OpenAI has closed "
            "self-serve fine-tuning to new users and is retiring it); set "
            "WA_PERSONA_OPENAI_FINE_TUNING=true to allow it"
        )


@contextmanager
def openai_errors(doing: str) -> Iterator[None]:
    """Turn the openai client's errors into this package's, saying what to do."""
    import openai

    try:
        yield
    except openai.AuthenticationError as exc:
        raise OpenAIAuthError(
            f"OpenAI refused the API key while {doing} ({_reason(exc)}); check {_KEY_HINT}"
        ) from exc
    except openai.PermissionDeniedError as exc:
        raise OpenAIAuthError(
            f"OpenAI refused this account while {doing} ({_reason(exc)}); OpenAI has closed "
            "self-serve fine-tuning to new users, see docs/openai-fine-tuning.md"
        ) from exc
    except openai.RateLimitError as exc:
        raise OpenAIRequestError(
            f"OpenAI's rate limit or quota stopped {doing} ({_reason(exc)}); try again later "
            "(`wa-persona openai watch` resumes tracking)"
        ) from exc
    except openai.APIConnectionError as exc:
        raise OpenAIUnavailableError(
            f"cannot reach OpenAI while {doing} ({exc.message}); check the network and "
            "WA_PERSONA_OPENAI_BASE_URL (`wa-persona openai watch` resumes tracking)"
        ) from exc
    except openai.APIStatusError as exc:
        raise OpenAIRequestError(
            f"OpenAI answered {exc.status_code} while {doing}: {_reason(exc)}"
        ) from exc
    except openai.APIError as exc:
        raise OpenAIRequestError(f"OpenAI error while {doing}: {exc.message}") from exc


def _reason(exc: openai.APIError) -> str:
    """OpenAI's own error message when the body has one."""
    body = exc.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return exc.message
