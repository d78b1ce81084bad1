"""Training progress as events: one typed record per start, step, eval, save, end or error.

`ProgressTracker` turns the trainer's logs into `ProgressEvent`s, appends each as one JSON
line to the run's `metrics.jsonl` and hands it to `on_event` (the CLI's progress bar, or the
JSON stream the bot relays from a worker process); `trainer_callback(tracker)` plugs it into
a transformers Trainer. Only the main process writes and calls `on_event`.

Throughput is the non-padding tokens TRL counts (`num_tokens`, summed over processes) over
the time spent inside optimizer steps, so evaluations and checkpoint saves do not dilute it.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from training.hardware import peak_memory_mb

__all__ = ["EventKind", "ProgressEvent", "ProgressTracker", "read_events", "trainer_callback"]

EventKind = Literal["start", "step", "eval", "save", "end", "error"]


@dataclass(frozen=True, slots=True)
class ProgressEvent:
    """One moment of a training run; fields that do not apply are None."""

    kind: EventKind
    step: int = 0
    max_steps: int | None = None
    epoch: float | None = None
    loss: float | None = None
    eval_loss: float | None = None
    learning_rate: float | None = None
    tokens: int | None = None  # non-padding training tokens seen so far in this process run
    tokens_per_s: float | None = None
    peak_memory_mb: float | None = None
    eta_s: float | None = None
    elapsed_s: float | None = None
    message: str | None = None

    def to_json(self) -> str:
        """One compact JSON object (NaN and infinities as null)."""
        values = {k: _finite(v) for k, v in asdict(self).items()}
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> ProgressEvent:
        """The event `to_json` wrote."""
        return cls(**json.loads(line))


def read_events(path: Path) -> list[ProgressEvent]:
    """Every event of a `metrics.jsonl` (empty when the file does not exist yet)."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ProgressEvent.from_json(line) for line in lines if line.strip()]


def _finite(value: object) -> object:
    return None if isinstance(value, float) and not math.isfinite(value) else value


class ProgressTracker:
    """Turns trainer moments into events, writes them to metrics.jsonl and calls `on_event`.

    Plain Python (no transformers): `trainer_callback(tracker)` connects it to a Trainer.
    """

    def __init__(
        self,
        metrics_path: Path | None,
        on_event: Callable[[ProgressEvent], None] | None = None,
        *,
        main_process: bool = True,
    ) -> None:
        self.metrics_path = metrics_path
        self.on_event = on_event
        self.main_process = main_process
        self.events: list[ProgressEvent] = []
        self._created = time.monotonic()
        self._began: float | None = None
        self._first_step = 0
        self._step_began: float | None = None
        self._step_seconds = 0.0
        self._tokens: int | None = None

    def emit(self, event: ProgressEvent) -> ProgressEvent:
        """Stamp time and memory on `event`, keep it, write it and pass it on (main only)."""
        event = replace(
            event,
            elapsed_s=round(time.monotonic() - self._created, 3),
            peak_memory_mb=round(peak_memory_mb(), 1),
        )
        self.events.append(event)
        if not self.main_process:
            return event
        if self.metrics_path is not None:
            with self.metrics_path.open("a", encoding="utf-8") as out:
                out.write(event.to_json() + "\n")
        if self.on_event is not None:
            self.on_event(event)
        return event

    @property
    def tokens(self) -> int | None:
        """Non-padding training tokens seen by this process's trainer (TRL's count)."""
        return self._tokens

    @property
    def step_seconds(self) -> float:
        """Wall time spent inside optimizer steps (no evaluation, no saving)."""
        return self._step_seconds

    @property
    def tokens_per_s(self) -> float | None:
        """Training tokens per second of optimizer-step time so far."""
        if self._tokens is None or self._step_seconds <= 0:
            return None
        return round(self._tokens / self._step_seconds, 1)

    def train_begin(self, step: int, max_steps: int, epoch: float | None) -> None:
        """Training (or resumed training) starts at `step`."""
        self._began = time.monotonic()
        self._first_step = step
        message = f"resuming at step {step}" if step else None
        self.emit(
            ProgressEvent(
                "start", step=step, max_steps=max_steps, epoch=epoch or 0.0, message=message
            )
        )

    def step_begin(self) -> None:
        """An optimizer step starts (its first micro-batch)."""
        self._step_began = time.monotonic()

    def step_end(self) -> None:
        """An optimizer step is done."""
        if self._step_began is not None:
            self._step_seconds += time.monotonic() - self._step_began
            self._step_began = None

    def log(self, logs: dict[str, float], step: int, max_steps: int, epoch: float | None) -> None:
        """A trainer log: an eval event for evaluation metrics, a step event for the loss."""
        common = {"step": step, "max_steps": max_steps, "epoch": epoch}
        if "eval_loss" in logs:
            self.emit(ProgressEvent("eval", eval_loss=logs["eval_loss"], **common))
        elif "loss" in logs:
            if "num_tokens" in logs:
                self._tokens = int(logs["num_tokens"])
            self.emit(
                ProgressEvent(
                    "step",
                    loss=logs["loss"],
                    learning_rate=logs.get("learning_rate"),
                    tokens=self._tokens,
                    tokens_per_s=self.tokens_per_s,
                    eta_s=self._eta(step, max_steps),
                    **common,
                )
            )

    def save(self, checkpoint: Path, step: int, max_steps: int, epoch: float | None) -> None:
        """A checkpoint was written."""
        self.emit(
            ProgressEvent(
                "save", step=step, max_steps=max_steps, epoch=epoch, message=str(checkpoint)
            )
        )

    def _eta(self, step: int, max_steps: int) -> float | None:
        """Seconds left at this call's average pace (evaluations included)."""
        done = step - self._first_step
        if self._began is None or done <= 0 or not max_steps:
            return None
        pace = (time.monotonic() - self._began) / done
        return round(max(max_steps - step, 0) * pace, 1)


def trainer_callback(tracker: ProgressTracker) -> Any:
    """A transformers `TrainerCallback` that feeds `tracker` (imports transformers)."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            tracker.train_begin(state.global_step, state.max_steps, state.epoch)

        def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            tracker.step_begin()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            tracker.step_end()

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            tracker.log(logs or {}, state.global_step, state.max_steps, state.epoch)

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            tracker.save(checkpoint, state.global_step, state.max_steps, state.epoch)

    return ProgressCallback()
