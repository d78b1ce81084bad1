"""The live bot under load: 1,000 Telegram chats talking to the persona.

Starts the real service (`bot.app.serve`) on a temporary data dir with the bundled sample's
Maya prepared, polling the fake Telegram Bot API of tests/fakes/telegram_server.py (which
must be importable: run from the repository root). Each simulated chat sends a few texts,
each `--think-s` after the reply to the one before. Typing simulation is as fast as settings
allow (`typing_speed` huge, `typing_max_wait_s` 0: a 1 ms plan, no "typing…" request).

Two times per text, from the moment `getUpdates` hands the update to the bot until the first
`sendMessage` for that chat reaches the fake server:

- end-to-end: all of it, as the person would see it;
- overhead: the same minus the time the chat's requests spent queued in PTB's
  `AIORateLimiter` (Telegram allows a bot about 30 messages a second; like typing waits,
  that wait is imposed on purpose, not work). The installed limiter is wrapped to note,
  per request, when it was handed to the limiter and when the limiter let it go.

A text that never got a `sendMessage` is a lost reply.

    .venv/bin/python benchmarks/bot_load.py [--chats 1000] [--messages 3] [--json OUT]

By default 1,000 chats open within 30 s (`--rate 33` new chats a second) and each writes
again 20 s after its reply (`--think-s 20`): all of them in conversation together, at a
person's pace, offering more than Telegram's 30 messages a second. `--rate 0` starts every
chat in the same instant (the stress case); `--no-flood-limit` turns off
PTB's 30 requests/s throttle (keeping its 429 retries) to see the bot's own capacity;
`--cprofile` prints where the time went. Results: docs/benchmarks.md ("Bot under load").

Exit status 1 when a reply was lost or the overhead p99 misses `--goal-ms`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import math
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from telegram.ext import AIORateLimiter

import bot.telegram
from bot.app import serve
from bot.personas import prepare_persona
from bot.settings import Settings
from style.sample import sample_paths
from tests.fakes.telegram_server import FakeTelegram, text_message

TEXTS = ("hey how are u", "what are you up to tonight?", "haha ok", "did you see that", "lol")
"""What the simulated people write, in turn."""


class TimedTelegram(FakeTelegram):
    """The fake Bot API, noting when each update was first served and each message arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.served_at: dict[int, float] = {}
        self.sent: dict[str, list[float]] = {}
        self.replied: dict[str, asyncio.Event] = {}

    async def _getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        updates = await super()._getUpdates(params)
        now = time.perf_counter()
        for update in updates:
            self.served_at.setdefault(update["update_id"], now)
        return updates

    async def _sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        sent = await super()._sendMessage(params)
        chat = str(params["chat_id"])
        self.sent.setdefault(chat, []).append(time.perf_counter())
        self.replied.setdefault(chat, asyncio.Event()).set()
        return sent


class TimedRateLimiter(AIORateLimiter):
    """PTB's limiter, noting per chat when each request entered it and when it was let go.

    A request retried after a 429 counts from entering until its first attempt (the fake
    answers no 429 here).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.waits: dict[str, list[tuple[float, float]]] = {}

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, Any]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> Any:
        entered = time.perf_counter()
        chat = data.get("chat_id")
        first = True

        async def timed(*call_args: Any, **call_kwargs: Any) -> Any:
            nonlocal first
            if first and chat is not None:
                first = False
                self.waits.setdefault(str(chat), []).append((entered, time.perf_counter()))
            return await callback(*call_args, **call_kwargs)

        return await super().process_request(timed, args, kwargs, endpoint, data, rate_limit_args)


@dataclass(frozen=True)
class Spread:
    """Milliseconds: percentiles of one measure over the answered texts."""

    p50: float
    p90: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        if not values:  # every reply lost
            return cls(math.nan, math.nan, math.nan, math.nan)
        ordered = sorted(values)

        def at(share: float) -> float:
            return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]

        return cls(at(0.50), at(0.90), at(0.99), ordered[-1])


@dataclass(frozen=True)
class Result:
    """One run's numbers."""

    chats: int
    texts: int
    lost: int
    end_to_end_ms: Spread
    overhead_ms: Spread
    limiter_wait_ms: Spread
    wall_s: float
    texts_per_s: float
    cpu_ms_per_text: float
    send_message_calls: int
    chat_action_calls: int
    load_average: tuple[float, float, float]


@dataclass(frozen=True)
class Load:
    """What the simulated people do, and whether PTB throttles the bot."""

    chats: int
    messages: int
    """Texts per chat."""
    rate: float
    """New chats per second (0: every chat starts at once)."""
    think_s: float
    """Between a reply and the chat's next text."""
    timeout_s: float
    """How long a chat waits for a reply before it writes again."""
    flood_limit: bool = True
    """PTB's client-side throttle (30 requests/s) on, as in production."""


async def chat(
    fake: TimedTelegram,
    chat_id: int,
    count: int,
    timeout_s: float,
    *,
    start_s: float = 0.0,
    think_s: float = 0.0,
) -> list[int]:
    """One person: after `start_s`, send `count` texts, each `think_s` after the reply to the
    one before (or after `timeout_s` without one)."""
    await asyncio.sleep(start_s)
    pushed = []
    for index in range(count):
        if index:
            await asyncio.sleep(think_s)
        replied = fake.replied.setdefault(str(chat_id), asyncio.Event())
        replied.clear()
        message = text_message(
            text=TEXTS[index % len(TEXTS)],
            chat_id=chat_id,
            user_id=chat_id,
            message_id=index + 1,
            date=int(time.time()),
        )
        pushed.append(fake.push_update(message=message))
        try:
            async with asyncio.timeout(timeout_s):
                await replied.wait()
        except TimeoutError:
            pass
    return pushed


@dataclass(frozen=True)
class Timing:
    """One answered text: seconds end to end, and of them queued in the rate limiter."""

    end_to_end_s: float
    limiter_wait_s: float


def timings(
    fake: TimedTelegram, limiter: TimedRateLimiter, chat_id: int, update_ids: list[int]
) -> list[Timing | None]:
    """For each update: served → the chat's first sendMessage after it (None: lost), and how
    long the chat's requests in that span waited in the limiter."""
    sends = fake.sent.get(str(chat_id), [])
    waits = limiter.waits.get(str(chat_id), [])
    found: list[Timing | None] = []
    for update_id in update_ids:
        served = fake.served_at.get(update_id)
        after = [at for at in sends if served is not None and at >= served]
        if served is None or not after:
            found.append(None)
            continue
        arrived = min(after)
        queued = sum(
            max(0.0, min(let_go, arrived) - max(entered, served)) for entered, let_go in waits
        )
        found.append(Timing(arrived - served, queued))
    return found


async def run(load: Load, data_dir: Path, profiler: cProfile.Profile | None = None) -> Result:
    """Serve Maya from `data_dir` and drive the simulated chats through it."""
    limiters: list[TimedRateLimiter] = []
    throttle = {} if load.flood_limit else {"overall_max_rate": 0, "group_max_rate": 0}

    def timed_limiter(**kwargs: Any) -> TimedRateLimiter:
        limiter = TimedRateLimiter(**kwargs, **throttle)
        limiters.append(limiter)
        return limiter

    bot.telegram.AIORateLimiter = timed_limiter  # type: ignore[assignment,misc]
    async with TimedTelegram() as fake:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=data_dir,
            backends=["retrieval"],
            telegram_token=fake.token,
            telegram_base_url=fake.base_url,
            telegram_base_file_url=fake.base_file_url,
            typing_speed=1e9,
            typing_max_wait_s=0.0,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(serve(settings, stop=stop))
        try:
            await fake.wait_for("getUpdates", timeout=60)
            (limiter,) = limiters
            warm = await chat(fake, 1, 1, load.timeout_s)  # loads Maya's index once
            if timings(fake, limiter, 1, warm) == [None]:
                raise SystemExit("the warm-up text got no reply; is the service answering?")
            calls_before = len(fake.calls)
            started, cpu_started = time.perf_counter(), time.process_time()
            if profiler is not None:
                profiler.enable()
            ids = range(1000, 1000 + load.chats)
            pushed = await asyncio.gather(
                *(
                    chat(
                        fake,
                        chat_id,
                        load.messages,
                        load.timeout_s,
                        start_s=index / load.rate if load.rate else 0.0,
                        think_s=load.think_s,
                    )
                    for index, chat_id in enumerate(ids)
                )
            )
            if profiler is not None:
                profiler.disable()
            wall = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
        finally:
            stop.set()
            await task
    found = [
        timing
        for chat_id, updates in zip(ids, pushed, strict=True)
        for timing in timings(fake, limiter, chat_id, updates)
    ]
    answered = [timing for timing in found if timing is not None]
    methods = [call.method for call in fake.calls[calls_before:]]
    return Result(
        chats=load.chats,
        texts=len(found),
        lost=len(found) - len(answered),
        end_to_end_ms=Spread.of([t.end_to_end_s * 1000 for t in answered]),
        overhead_ms=Spread.of([(t.end_to_end_s - t.limiter_wait_s) * 1000 for t in answered]),
        limiter_wait_ms=Spread.of([t.limiter_wait_s * 1000 for t in answered]),
        wall_s=wall,
        texts_per_s=len(found) / wall,
        cpu_ms_per_text=cpu * 1000 / len(found),
        send_message_calls=methods.count("sendMessage"),
        chat_action_calls=methods.count("sendChatAction"),
        load_average=os.getloadavg(),
    )


def report(result: Result) -> str:
    """The result as a Markdown table and a line of counts."""
    lines = [
        "| measure | texts | lost | p50 ms | p90 ms | p99 ms | max ms | wall s | texts/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, spread in (
        ("end-to-end", result.end_to_end_ms),
        ("overhead", result.overhead_ms),
        ("limiter wait", result.limiter_wait_ms),
    ):
        lines.append(
            f"| {name} | {result.texts:,} | {result.lost} | {spread.p50:.1f} | "
            f"{spread.p90:.1f} | {spread.p99:.1f} | {spread.max:.1f} | {result.wall_s:.1f} | "
            f"{result.texts_per_s:.1f} |"
        )
    lines.append(
        f"requests: {result.send_message_calls:,} sendMessage, {result.chat_action_calls:,} "
        f"sendChatAction; CPU {result.cpu_ms_per_text:.1f} ms/text (this process, fake server "
        f"included); load average {' '.join(f'{x:.2f}' for x in result.load_average)}"
    )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=3, help="texts per chat")
    parser.add_argument(
        "--rate", type=float, default=33.0, help="new chats per second (0: all at once)"
    )
    parser.add_argument("--think-s", type=float, default=20.0, help="pause before the next text")
    parser.add_argument("--goal-ms", type=float, default=50.0, help="the overhead p99 to meet")
    parser.add_argument("--timeout-s", type=float, default=600.0, help="wait per reply")
    parser.add_argument(
        "--no-flood-limit",
        action="store_true",
        help="turn off PTB's client-side throttle (30 requests/s), keeping its 429 retries",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--cprofile", action="store_true", help="print the 30 hottest functions of the load"
    )
    options = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    for name in list(os.environ):
        if name.startswith("WA_PERSONA_"):
            del os.environ[name]
    print(f"load average before: {os.getloadavg()}", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="bot-load-") as folder:
        data_dir = Path(folder) / "data"
        prepare_started = time.perf_counter()
        prepare_persona(
            Settings(_env_file=None, data_dir=data_dir),  # type: ignore[call-arg]
            "Maya",
            sample_paths(),
        )
        print(f"Maya prepared in {time.perf_counter() - prepare_started:.1f} s", file=sys.stderr)
        profiler = cProfile.Profile() if options.cprofile else None
        load = Load(
            options.chats,
            options.messages,
            options.rate,
            options.think_s,
            options.timeout_s,
            flood_limit=not options.no_flood_limit,
        )
        result = asyncio.run(run(load, data_dir, profiler))
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    print(report(result))
    if options.json is not None:
        payload = {"load": asdict(load), "result": asdict(result)}
        options.json.write_text(json.dumps(payload, indent=2) + "\n", "utf-8")
    met = result.lost == 0 and result.overhead_ms.p99 < options.goal_ms
    print(
        f"goal (no lost replies, overhead p99 < {options.goal_ms:g} ms): "
        f"{'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
