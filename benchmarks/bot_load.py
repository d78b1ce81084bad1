"""The live bot under load: 1,000 Telegram chats talking to the persona at once.

Starts the real service (`bot.app.serve`) on a temporary data dir with the bundled sample's
Maya prepared, polling the fake Telegram Bot API of tests/fakes/telegram_server.py (which
must be importable: run from the repository root). Each simulated chat sends a few texts,
each after the reply to the one before. Typing simulation is as fast as settings allow
(`typing_speed` huge, `typing_max_wait_s` 0), so what is timed is the engine and the
transport: from the moment `getUpdates` hands an update to the bot until the first
`sendMessage` to that chat. A text that never got a `sendMessage` is a lost reply.

    .venv/bin/python benchmarks/bot_load.py [--chats 1000] [--messages 3] [--json OUT]

`--rate N` starts N new chats a second instead of all at once; `--think-s` is the pause
before a chat's next text; `--no-flood-limit` turns off PTB's 30 requests/s throttle to see
the engine's own capacity; `--cprofile` prints where the time went. Results:
docs/benchmarks.md ("Bot under load").

Exit status 1 when a reply was lost or the p99 misses `--goal-ms`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import logging
import os
import pstats
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bot.telegram
from bot.app import serve
from bot.personas import prepare_persona
from bot.settings import Settings
from style.sample import sample_paths
from tests.fakes.telegram_server import FakeTelegram, text_message

TEXTS = ("hey how are u", "what are you up to tonight?", "haha ok", "did you see that", "lol")
"""What the simulated people write, in turn."""


class TimedTelegram(FakeTelegram):
    """The fake Bot API, noting when each update was first served and each message sent."""

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


@dataclass(frozen=True)
class Result:
    """One run's numbers (milliseconds)."""

    chats: int
    texts: int
    lost: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    wall_s: float
    texts_per_s: float


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


def latency_ms(fake: TimedTelegram, chat_id: int, update_ids: list[int]) -> list[float | None]:
    """For each update: ms from being served to the chat's first sendMessage after it."""
    sends = fake.sent.get(str(chat_id), [])
    found: list[float | None] = []
    for update_id in update_ids:
        served = fake.served_at.get(update_id)
        after = [at for at in sends if served is not None and at >= served]
        found.append(None if not after else (min(after) - served) * 1000)  # type: ignore[operator]
    return found


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@dataclass(frozen=True)
class Load:
    """What the simulated people do."""

    chats: int
    messages: int
    """Texts per chat."""
    rate: float
    """New chats per second (0: every chat starts at once)."""
    think_s: float
    """Between a reply and the chat's next text."""
    timeout_s: float
    """How long a chat waits for a reply before it writes again."""


async def run(load: Load, data_dir: Path, profiler: cProfile.Profile | None = None) -> Result:
    """Serve Maya from `data_dir` and drive the simulated chats through it."""
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
            warm = await chat(fake, 1, 1, load.timeout_s)  # loads Maya's index once
            if latency_ms(fake, 1, warm) == [None]:
                raise SystemExit("the warm-up text got no reply; is the service answering?")
            started = time.perf_counter()
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
        finally:
            stop.set()
            await task
    found = [
        ms
        for chat_id, updates in zip(ids, pushed, strict=True)
        for ms in latency_ms(fake, chat_id, updates)
    ]
    times = [ms for ms in found if ms is not None]
    return Result(
        chats=load.chats,
        texts=len(found),
        lost=len(found) - len(times),
        p50_ms=percentile(times, 0.50),
        p90_ms=percentile(times, 0.90),
        p99_ms=percentile(times, 0.99),
        max_ms=max(times),
        wall_s=wall,
        texts_per_s=len(found) / wall,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=3, help="texts per chat")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="new chats per second (0: all at once)"
    )
    parser.add_argument("--think-s", type=float, default=1.0, help="pause before the next text")
    parser.add_argument("--goal-ms", type=float, default=50.0, help="the p99 to meet")
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
    if options.no_flood_limit:
        unthrottled = partial(bot.telegram.AIORateLimiter, overall_max_rate=0, group_max_rate=0)
        bot.telegram.AIORateLimiter = unthrottled  # type: ignore[attr-defined,misc]
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
            options.chats, options.messages, options.rate, options.think_s, options.timeout_s
        )
        result = asyncio.run(run(load, data_dir, profiler))
    if profiler is not None:
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(30)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(40)
    print("| chats | texts | lost | p50 ms | p90 ms | p99 ms | max ms | wall s | texts/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {result.chats:,} | {result.texts:,} | {result.lost} | {result.p50_ms:.1f} | "
        f"{result.p90_ms:.1f} | {result.p99_ms:.1f} | {result.max_ms:.1f} | "
        f"{result.wall_s:.1f} | {result.texts_per_s:.0f} |"
    )
    if options.json is not None:
        options.json.write_text(json.dumps(asdict(result), indent=2) + "\n", "utf-8")
    met = result.lost == 0 and result.p99_ms < options.goal_ms
    print(f"goal (no lost replies, p99 < {options.goal_ms:g} ms): {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
