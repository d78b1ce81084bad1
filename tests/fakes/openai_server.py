"""A fake OpenAI API on 127.0.0.1 for the real `openai` client: fine-tuning and chat.

`FakeOpenAI` holds the state (uploaded files with their bytes, jobs, events, every request
seen) and builds an aiohttp `web.Application` from `routes()`; `serve()` runs it in a
background thread with its own event loop on a random port and sets `base_url`, which a test
passes to `openai.OpenAI(base_url=...)`. Responses have the shapes of the client's types
(`openai.types.FileObject`, `openai.types.fine_tuning.FineTuningJob`, `FineTuningJobEvent`,
cursor pages with `has_more`); errors the API's `{"error": {...}}` body.

`POST /v1/chat/completions` (non-streaming) answers with a `ChatCompletion`
(`openai.types.chat.ChatCompletion`: one choice, usage counted at four characters a token),
after checking the request as the API does (known parameters from the installed client's
`completion_create_params`, their ranges, at most four stop sequences, messages with known
roles and text content). The answer honours `stop` and `max_tokens` (finish reason `length`).
Answers follow a script too: `reply_with(text)`, `fail_with(status)` (429, 500, 503, 400,
401...) and `hang(seconds)` queue the next ones; unscripted requests get `default_reply`.
`chat_models`, when set, is what the server serves (vLLM's `--lora-modules` names); other
models get the API's 404 `model_not_found`. `extra_chat_parameters` lets a fake play vLLM,
which takes sampling parameters OpenAI refuses (`VLLM_SAMPLING_PARAMETERS`). Any key other
than `api_key` gets 401.

Jobs follow a script: each `GET /v1/fine_tuning/jobs/{id}` applies the job's next `Step`
(a status, the events emitted on the way, and on success or failure the final fields), as a
real job advances between polls. Events are listed newest first, as OpenAI lists them, and
`after=<event id>` pages towards older ones.

To fake another endpoint, add a handler method and its line in `routes()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from openai.types.chat import completion_create_params

from tests.fakes.server import serve_in_thread

API_KEY = "sk-test-wa-persona"
BODY = web.RequestKey("body", object)
"""Where a handler leaves the parsed request body for the request log."""
ORGANIZATION = "org-fake"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
FINE_TUNABLE = frozenset(
    {
        "gpt-4.1-2025-04-14",
        "gpt-4.1-mini-2025-04-14",
        "gpt-4.1-nano-2025-04-14",
        "gpt-4o-mini-2024-07-18",
    }
)
_HYPERPARAMETERS = frozenset({"n_epochs", "batch_size", "learning_rate_multiplier"})
_JOB_FIELDS = frozenset(
    {
        "model",
        "training_file",
        "validation_file",
        "suffix",
        "seed",
        "method",
        "hyperparameters",
        "metadata",
        "integrations",
    }
)


CHAT_PARAMETERS = frozenset(
    completion_create_params.CompletionCreateParamsBase.__required_keys__
    | completion_create_params.CompletionCreateParamsBase.__optional_keys__
    | {"stream"}
)
"""Every body key the installed client's chat-completion types know; others get 400."""
VLLM_SAMPLING_PARAMETERS = frozenset(
    {"top_k", "min_p", "repetition_penalty", "min_tokens", "stop_token_ids", "ignore_eos"}
)
"""Sampling parameters vLLM's chat endpoint takes beyond OpenAI's (its documented extras);
a fake playing vLLM sets `extra_chat_parameters` to them."""
CHAT_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_RANGES = {
    "temperature": (0.0, 2.0),
    "top_p": (0.0, 1.0),
    "frequency_penalty": (-2.0, 2.0),
    "presence_penalty": (-2.0, 2.0),
    "repetition_penalty": (0.01, 2.0),
}
_MAX_STOP = 4
_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", None),
}


@dataclass(frozen=True, slots=True)
class ChatAnswer:
    """A scripted chat answer: the text, and the finish reason when not cut by the request."""

    text: str
    finish_reason: str = "stop"


@dataclass(frozen=True, slots=True)
class ChatFailure:
    """A scripted API error for the next chat request."""

    status: int
    message: str
    kind: str
    code: str | None


@dataclass(frozen=True, slots=True)
class ChatHang:
    """Answer the next chat request only after `seconds` (or when the server stops)."""

    seconds: float
    text: str


ChatScript = ChatAnswer | ChatFailure | ChatHang


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake received (authorized or not), with its parsed body."""

    method: str
    path: str
    query: dict[str, str]
    authorization: str | None
    body: Any = None
    """JSON requests: the decoded JSON; multipart uploads: the form fields (the file as its
    `UploadedFile`)."""


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A file uploaded through `POST /v1/files`, kept byte for byte."""

    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass(slots=True)
class Step:
    """What a job becomes on its next retrieve, and the events it emits on the way there."""

    status: str
    events: list[dict[str, Any]] = field(default_factory=list)
    """Partial events: `message`, and optionally `level`, `type` and `data`."""
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    error: dict[str, Any] | None = None
    """`{"code", "message", "param"}` for a failed job."""


def metrics_event(step: int, total: int, train_loss: float, **more: float) -> dict[str, Any]:
    """A `metrics` event as OpenAI sends them during training."""
    data = {"step": step, "total_steps": total, "train_loss": train_loss, **more}
    return {
        "message": f"Step {step}/{total}: training loss={train_loss:.4f}",
        "type": "metrics",
        "data": data,
    }


def succeeding(
    model: str = "ft:gpt-4.1-mini-2025-04-14:org-fake:maya:AbC123",
    *,
    trained_tokens: int = 12_345,
    metrics: list[dict[str, Any]] | None = None,
) -> list[Step]:
    """queued → running (emitting `metrics`) → succeeded with `model` and `trained_tokens`."""
    return [
        Step("queued", [{"message": "Files validated, moving job to queued state"}]),
        Step("running", [{"message": "Fine-tuning job started"}, *(metrics or [])]),
        Step(
            "succeeded",
            [
                {"message": f"New fine-tuned model created: {model}"},
                {"message": "The job has successfully completed"},
            ],
            fine_tuned_model=model,
            trained_tokens=trained_tokens,
        ),
    ]


def failing(code: str, message: str, param: str | None = None) -> list[Step]:
    """queued → failed with OpenAI's `error` object."""
    return [
        Step("queued", [{"message": "Files validated, moving job to queued state"}]),
        Step(
            "failed",
            [{"message": message, "level": "error"}],
            error={"code": code, "message": message, "param": param},
        ),
    ]


class FakeOpenAI:
    """The state behind the fake API; `script` is what the next created job will do."""

    def __init__(self, *, api_key: str = API_KEY, organization: str = ORGANIZATION) -> None:
        self.api_key = api_key
        self.organization = organization
        self.requests: list[RecordedRequest] = []
        self.files: dict[str, UploadedFile] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.events: dict[str, list[dict[str, Any]]] = {}
        """Each job's events, oldest first."""
        self.scripts: dict[str, list[Step]] = {}
        self.script: list[Step] = succeeding()
        self.models = set(FINE_TUNABLE)
        """Models a job may fine-tune; others are refused as the API refuses them."""
        self.base_url: str | None = None
        self.default_reply = "ok"
        """The chat answer when nothing is scripted."""
        self.chat_models: set[str] | None = None
        """The models chat requests may name; None serves any."""
        self.extra_chat_parameters: frozenset[str] = frozenset()
        """Body keys accepted beyond OpenAI's (`VLLM_SAMPLING_PARAMETERS` for vLLM)."""
        self._chat_script: deque[ChatScript] = deque()
        self._closing: asyncio.Event | None = None
        self._ids = itertools.count(1)
        self._clock = itertools.count(1_750_000_000)

    # --- what tests look at ------------------------------------------------------------

    def requests_to(self, method: str, path: str) -> list[RecordedRequest]:
        """The requests made with `method` to exactly `path` (e.g. "/v1/files")."""
        return [r for r in self.requests if r.method == method and r.path == path]

    def chat_bodies(self) -> list[dict[str, Any]]:
        """The JSON bodies of every chat completion request, oldest first."""
        return [r.body for r in self.requests_to("POST", "/v1/chat/completions")]

    def reply_with(self, text: str, *, finish_reason: str = "stop") -> None:
        """Answer the next chat request with `text`."""
        self._chat_script.append(ChatAnswer(text, finish_reason))

    def fail_with(
        self, status: int, message: str = "", *, kind: str | None = None, code: str | None = None
    ) -> None:
        """Answer the next chat request with the API's error body and `status`."""
        default_kind, default_code = _ERROR_KINDS.get(status, ("invalid_request_error", None))
        self._chat_script.append(
            ChatFailure(
                status,
                message or f"fake error {status}",
                kind or default_kind,
                code if code is not None else default_code,
            )
        )

    def hang(self, seconds: float, *, text: str = "too late") -> None:
        """Answer the next chat request only after `seconds`, or when the server stops."""
        self._chat_script.append(ChatHang(seconds, text))

    def add_event(
        self,
        job_id: str,
        message: str,
        *,
        level: str = "info",
        kind: str = "message",
        data: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Append an event to a job (as OpenAI would while it runs); returns it."""
        event = {
            "id": f"ftevent-{next(self._ids):06d}",
            "object": "fine_tuning.job.event",
            "created_at": next(self._clock),
            "level": level,
            "message": message,
            "type": kind,
            "data": data or {},
        }
        self.events[job_id].append(event)
        return event

    # --- the server ----------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        """Every endpoint the fake speaks."""
        return [
            web.post("/v1/files", self.upload_file),
            web.delete("/v1/files/{file_id}", self.delete_file),
            web.post("/v1/fine_tuning/jobs", self.create_job),
            web.get("/v1/fine_tuning/jobs", self.list_jobs),
            web.get("/v1/fine_tuning/jobs/{job_id}", self.retrieve_job),
            web.get("/v1/fine_tuning/jobs/{job_id}/events", self.list_events),
            web.post("/v1/fine_tuning/jobs/{job_id}/cancel", self.cancel_job),
            web.post("/v1/chat/completions", self.chat_completion),
        ]

    def application(self) -> web.Application:
        """The aiohttp app: bearer-key check and request log around `routes()`."""
        app = web.Application(middlewares=[self._authorize_and_record])
        app.add_routes(self.routes())
        return app

    @contextmanager
    def serve(self) -> Iterator[FakeOpenAI]:
        """Run the app on 127.0.0.1 (random port) in a background thread; set `base_url`."""
        self._closing = asyncio.Event()
        # setting `_closing` on stopping ends hanging answers, so cleanup need not wait
        with serve_in_thread(
            self.application(), name="fake-openai", on_stop=self._closing.set
        ) as port:
            self.base_url = f"http://127.0.0.1:{port}/v1"
            try:
                yield self
            finally:
                self.base_url = None

    @web.middleware
    async def _authorize_and_record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        authorization = request.headers.get("Authorization")
        try:
            if authorization != f"Bearer {self.api_key}":
                await request.read()  # drain an upload, as a server does before answering
                return _error(
                    401,
                    "Incorrect API key provided. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    code="invalid_api_key",
                )
            return await handler(request)
        finally:
            self.requests.append(
                RecordedRequest(
                    request.method,
                    request.path,
                    dict(request.query),
                    authorization,
                    request.get(BODY),
                )
            )

    # --- files ---------------------------------------------------------------------------

    async def upload_file(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload, purpose = form.get("file"), form.get("purpose")
        if not isinstance(upload, web.FileField):
            return _error(400, "'file' is a required property", param="file")
        if purpose not in ("fine-tune", "assistants", "batch", "vision", "user_data"):
            return _error(400, f"Invalid purpose: {purpose!r}", param="purpose")
        stored = UploadedFile(
            id=f"file-{next(self._ids):06d}",
            filename=upload.filename,
            purpose=purpose,
            content=upload.file.read(),
            created_at=next(self._clock),
        )
        self.files[stored.id] = stored
        request[BODY] = {"purpose": purpose, "file": stored}
        return web.json_response(stored.to_json())

    async def delete_file(self, request: web.Request) -> web.Response:
        file_id = request.match_info["file_id"]
        if self.files.pop(file_id, None) is None:
            return _error(404, f"No such File object: {file_id}", param="id")
        return web.json_response({"id": file_id, "object": "file", "deleted": True})

    # --- fine-tuning jobs ----------------------------------------------------------------

    async def create_job(self, request: web.Request) -> web.Response:
        body = request[BODY] = await request.json()
        problem = self._job_request_problem(body)
        if problem is not None:
            return _error(400, problem[1], param=problem[0])
        job_id = f"ftjob-{next(self._ids):06d}"
        hyperparameters = body.get("method", {}).get("supervised", {}).get("hyperparameters", {})
        self.jobs[job_id] = {
            "id": job_id,
            "object": "fine_tuning.job",
            "created_at": next(self._clock),
            "error": None,
            "fine_tuned_model": None,
            "finished_at": None,
            "hyperparameters": {
                "n_epochs": hyperparameters.get("n_epochs", "auto"),
                "batch_size": hyperparameters.get("batch_size", "auto"),
                "learning_rate_multiplier": hyperparameters.get("learning_rate_multiplier", "auto"),
            },
            "model": body["model"],
            "organization_id": self.organization,
            "result_files": [],
            "seed": body.get("seed") if body.get("seed") is not None else 1234,
            "status": "validating_files",
            "trained_tokens": None,
            "training_file": body["training_file"],
            "validation_file": body.get("validation_file"),
            "estimated_finish": None,
            "integrations": [],
            "metadata": body.get("metadata"),
            "method": body.get("method") or {"type": "supervised"},
            "user_provided_suffix": body.get("suffix"),
        }
        self.scripts[job_id] = list(self.script)
        self.events[job_id] = []
        self.add_event(job_id, f"Created fine-tuning job: {job_id}")
        self.add_event(job_id, f"Validating training file: {body['training_file']}")
        return web.json_response(self.jobs[job_id])

    def _job_request_problem(self, body: Any) -> tuple[str | None, str] | None:
        """(param, message) of the first thing the real API would refuse, else None."""
        if not isinstance(body, dict):
            return None, "The request body must be a JSON object"
        unknown = sorted(set(body) - _JOB_FIELDS)
        if unknown:
            return unknown[0], f"Unrecognized request argument supplied: {unknown[0]}"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model", "'model' is a required property"
        if body["model"] not in self.models:
            return "model", f"Model {body['model']} is not available for fine-tuning"
        for param in ("training_file", "validation_file"):
            file_id = body.get(param)
            if file_id is None and param == "validation_file":
                continue
            stored = self.files.get(file_id) if isinstance(file_id, str) else None
            if stored is None or stored.purpose != "fine-tune":
                return param, f"invalid {param}: {file_id!r}"
        suffix = body.get("suffix")
        if suffix is not None and (not isinstance(suffix, str) or len(suffix) > 64):
            return "suffix", "suffix must be a string of at most 64 characters"
        method = body.get("method")
        if method is not None:
            if not isinstance(method, dict) or method.get("type") not in (
                "supervised",
                "dpo",
                "reinforcement",
            ):
                return "method", "method.type must be supervised, dpo or reinforcement"
            settings = method.get(method["type"], {})
            hyperparameters = settings.get("hyperparameters", {})
            if not isinstance(hyperparameters, dict) or set(hyperparameters) - _HYPERPARAMETERS:
                return "method", "unrecognized hyperparameters"
            for name, value in hyperparameters.items():
                if value != "auto" and (
                    isinstance(value, bool) or not isinstance(value, int | float)
                ):
                    return "method", f"{name} must be 'auto' or a number"
        return None

    async def retrieve_job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job_id"])
        if job is None:
            return _not_found(request.match_info["job_id"])
        script = self.scripts[job["id"]]
        if script and job["status"] not in TERMINAL:
            self._apply(job, script.pop(0))
        return web.json_response(job)

    def _apply(self, job: dict[str, Any], step: Step) -> None:
        job["status"] = step.status
        for event in step.events:
            self.add_event(
                job["id"],
                event["message"],
                level=event.get("level", "info"),
                kind=event.get("type", "message"),
                data=event.get("data"),
            )
        if step.status in TERMINAL:
            job["finished_at"] = next(self._clock)
            job["fine_tuned_model"] = step.fine_tuned_model
            job["trained_tokens"] = step.trained_tokens
            job["error"] = step.error

    async def list_events(self, request: web.Request) -> web.Response:
        job_id = request.match_info["job_id"]
        if job_id not in self.jobs:
            return _not_found(job_id)
        newest_first = list(reversed(self.events[job_id]))
        return _page(newest_first, request)

    async def cancel_job(self, request: web.Request) -> web.Response:
        job = self.jobs.get(request.match_info["job_id"])
        if job is None:
            return _not_found(request.match_info["job_id"])
        if job["status"] in TERMINAL:
            return _error(400, f"Job {job['id']} has already {job['status']}", param="job_id")
        job["status"] = "cancelled"
        job["finished_at"] = next(self._clock)
        self.add_event(job["id"], "Fine-tuning job cancelled")
        return web.json_response(job)

    async def list_jobs(self, request: web.Request) -> web.Response:
        newest_first = sorted(self.jobs.values(), key=lambda job: job["created_at"], reverse=True)
        return _page(newest_first, request)

    # --- chat completions ----------------------------------------------------------------

    async def chat_completion(self, request: web.Request) -> web.Response:
        try:
            body = request[BODY] = await request.json()
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        problem = _chat_request_problem(body, self.extra_chat_parameters)
        if problem is not None:
            return _error(400, problem[1], param=problem[0])
        if self.chat_models is not None and body["model"] not in self.chat_models:
            return _error(
                404,
                f"The model `{body['model']}` does not exist or you do not have access to it.",
                code="model_not_found",
            )
        scripted = (
            self._chat_script.popleft() if self._chat_script else ChatAnswer(self.default_reply)
        )
        if isinstance(scripted, ChatFailure):
            return _error(scripted.status, scripted.message, code=scripted.code, kind=scripted.kind)
        if isinstance(scripted, ChatHang):
            assert self._closing is not None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), scripted.seconds)
            scripted = ChatAnswer(scripted.text)
        return web.json_response(self._chat_completion(body, scripted))

    def _chat_completion(self, body: dict[str, Any], answer: ChatAnswer) -> dict[str, Any]:
        """The `ChatCompletion` JSON for `answer`, cut at a stop sequence or `max_tokens`."""
        text, finish = answer.text, answer.finish_reason
        stops = body.get("stop") or []
        for stop in [stops] if isinstance(stops, str) else stops:
            if stop in text:
                text, finish = text[: text.index(stop)], "stop"
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if limit is not None and _tokens(text) > limit:
            text, finish = text[: limit * 4], "length"
        prompt_tokens = sum(
            _tokens(m["content"]) + 3 for m in body["messages"] if isinstance(m["content"], str)
        )
        completion_tokens = _tokens(text)
        return {
            "id": f"chatcmpl-fake{next(self._ids):06d}",
            "object": "chat.completion",
            "created": next(self._clock),
            "model": body["model"],
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
        }


def _chat_request_problem(body: Any, extra: frozenset[str]) -> tuple[str | None, str] | None:
    """(param, message) of the first thing the real API would refuse in a chat request."""
    if not isinstance(body, dict):
        return None, "The request body must be a JSON object"
    unknown = sorted(set(body) - CHAT_PARAMETERS - extra)
    if unknown:
        return unknown[0], f"Unrecognized request argument supplied: {unknown[0]}"
    for key in ("model", "messages"):
        if key not in body:
            return key, f"Missing required parameter: '{key}'."
    if body.get("stream"):
        return "stream", "this fake answers non-streaming requests only"
    if body.get("n", 1) != 1:
        return "n", "this fake answers with one choice only"
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        return (
            "messages",
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
        )
    for number, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in CHAT_ROLES:
            return f"messages[{number}].role", f"Invalid value for 'messages[{number}].role'."
        if not isinstance(message.get("content"), str):
            return f"messages[{number}].content", "this fake takes text content only"
    for key, (low, high) in _RANGES.items():
        value = body.get(key)
        if value is not None and not (
            isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high
        ):
            return key, f"Invalid '{key}': expected a number from {low} to {high}."
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            return key, f"Invalid '{key}': integer below minimum value 1."
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list) or not all(isinstance(item, str) for item in stop):
            return "stop", "Invalid 'stop': expected a string or an array of strings."
        if len(stop) > _MAX_STOP:
            return "stop", f"Invalid 'stop': array too long; at most {_MAX_STOP} sequences."
    return None


def _tokens(text: str) -> int:
    return max(1, len(text) // 4) if text else 0


def _page(newest_first: list[dict[str, Any]], request: web.Request) -> web.Response:
    """A cursor page: up to `limit` items after the item `after` (default 20)."""
    start = 0
    after = request.query.get("after")
    if after is not None:
        ids = [item["id"] for item in newest_first]
        if after not in ids:
            return _error(400, f"Invalid 'after': {after}", param="after")
        start = ids.index(after) + 1
    limit = int(request.query.get("limit", "20"))
    data = newest_first[start : start + limit]
    return web.json_response(
        {"object": "list", "data": data, "has_more": start + limit < len(newest_first)}
    )


def _not_found(job_id: str) -> web.Response:
    return _error(404, f"Could not find fine-tuning job {job_id}", param="fine_tuning_job_id")


def _error(
    status: int,
    message: str,
    *,
    param: str | None = None,
    code: str | None = None,
    kind: str = "invalid_request_error",
) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")
