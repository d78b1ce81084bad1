"""Time the persona engine's reply path: retrieval search over a long history, engine overhead.

Two measurements, both on one core:

- `retrieval`: a seeded 200,000-message chat (the profile benchmark's generator) becomes a
  dataset (`build_dataset`) and an `ExchangeIndex` of its training split; then
  `RetrievalBackend.reply` answers the persona turns of the held-out split, each prompt in
  its own chat, timed per reply (search, de-duplication and the worker thread included).
  Goal: p99 under 10 ms.
- `engine`: `PersonaEngine.respond` and `PersonaEngine.handle` (+ `wait`) with a real
  `Store` on a SQLite file, an instant backend (a fixed `Reply`) and typing simulation off,
  so only the engine's own work is timed: storing the turns, reading the history, splitting
  bubbles, drawing the typing plan. Goal: p99 under 5 ms.

    python benchmarks/engine_bench.py
    python benchmarks/engine_bench.py --messages 200000 --prompts 4000 --replies 4000
    python benchmarks/engine_bench.py --only engine --cprofile
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import asyncio  # noqa: E402
import cProfile  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from profile_bench import PERSONA, _cpu_name, _pin_to_one_cpu, generate_chat  # noqa: E402

from bot.backends.base import ChatTurn, Prompt, Reply  # noqa: E402
from bot.backends.retrieval import RetrievalBackend  # noqa: E402
from bot.engine import PersonaEngine, PersonaRuntime  # noqa: E402
from bot.errors import BackendError  # noqa: E402
from bot.exchanges import ExchangeIndex  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.store import Store  # noqa: E402
from style.profile import ProfileWarning  # noqa: E402
from training.dataset import DatasetConfig, build_dataset  # noqa: E402
from training.dataset.samples import Sample  # noqa: E402
from training.db import connect  # noqa: E402

DEFAULT_MESSAGES = 200_000
DEFAULT_SEED = 20240501
DEFAULT_PROMPTS = 2_000
DEFAULT_REPLIES = 2_000
TURNS_PER_CHAT = 20
"""Engine benchmark: user turns sent in each chat (so histories grow to the prompt's cap)."""
FIXED_START = datetime(2024, 5, 1, 18, 0)
WORDS = ("hey", "are", "u", "coming", "tonight", "lol", "i", "thought", "we", "said", "8", "ok")


def heldout_prompts(samples: list[Sample], count: int) -> list[Prompt]:
    """One prompt per trained persona turn of the eval samples, cycled up to `count`."""
    prompts: list[Prompt] = []
    for sample in samples:
        turns = [ChatTurn(turn.role, turn.bubbles, turn.ts or FIXED_START) for turn in sample.turns]
        for i, turn in enumerate(sample.turns):
            if turn.role == "assistant" and turn.train and i > 0:
                prompts.append(Prompt(PERSONA, "", tuple(turns[:i]), turns[i - 1].at))
    if not prompts:
        raise SystemExit("the eval split has no persona turns; use more --messages")
    # each prompt in a chat of its own, so no reply is refused as already sent there
    cycled = (prompts[i % len(prompts)] for i in range(count))
    return [Prompt(PERSONA, f"heldout-{i}", p.history, p.now) for i, p in enumerate(cycled)]


class InstantBackend:
    """Answers at once with the same two bubbles: no model time at all."""

    name = "instant"

    def __init__(self) -> None:
        self._reply = Reply(bubbles=("haha yes", "see u there ✨"), backend=self.name)

    async def reply(self, prompt: Prompt) -> Reply:
        return self._reply


class NullDelivery:
    """A transport that sends nowhere (the engine's own work is what is timed)."""

    async def typing(self, on: bool) -> None:
        return None

    async def send(self, bubble: str, reply: Reply) -> None:
        return None

    async def failed(self, error: BackendError) -> None:
        raise error


class Clock:
    """The persona's wall clock, moving a minute per reading so turns have distinct times."""

    def __init__(self) -> None:
        self.now = FIXED_START

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


class Timer:
    """Wall-clock and CPU seconds (the whole process's, worker threads included) per use.

    On a shared machine the wall clock also counts the time other jobs held the core; the
    CPU time is what this process itself spent.
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self._started = (0.0, 0.0)

    def __enter__(self) -> None:
        self._started = (time.perf_counter(), time.process_time())

    def __exit__(self, *_: object) -> None:
        wall, cpu = self._started
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)


async def time_retrieval(backend: RetrievalBackend, prompts: list[Prompt]) -> Timer:
    """Time per `reply`, one prompt after another (as the event loop sees it)."""
    timer = Timer()
    for prompt in prompts:
        with timer:
            await backend.reply(prompt)
    return timer


async def time_engine(engine: PersonaEngine, replies: int, rng: random.Random, via: str) -> Timer:
    """Time per reply, `respond` or `handle` + `wait`, over chats of `TURNS_PER_CHAT` turns."""
    delivery = NullDelivery()
    timer = Timer()
    for n in range(replies):
        chat_id = f"{via}-{n // TURNS_PER_CHAT}"
        bubbles = tuple(
            " ".join(rng.sample(WORDS, rng.randint(2, 8))) for _ in range(rng.randint(1, 3))
        )
        with timer:
            if via == "respond":
                await engine.respond(chat_id, PERSONA, ChatTurn("user", bubbles, FIXED_START))
            else:
                await engine.handle(chat_id, PERSONA, bubbles, delivery)
                await engine.wait(chat_id)
    return timer


def percentiles(timer: Timer) -> dict[str, float]:
    """Wall-clock p50/p95/p99/max and CPU p50/p99, in milliseconds."""
    wall = np.asarray(timer.wall) * 1000.0
    cpu = np.asarray(timer.cpu) * 1000.0
    p50, p95, p99 = np.percentile(wall, [50, 95, 99])
    cpu50, cpu99 = np.percentile(cpu, [50, 99])
    return {
        "n": len(timer.wall),
        "p50_ms": round(float(p50), 3),
        "p95_ms": round(float(p95), 3),
        "p99_ms": round(float(p99), 3),
        "max_ms": round(float(wall.max()), 3),
        "cpu_p50_ms": round(float(cpu50), 3),
        "cpu_p99_ms": round(float(cpu99), 3),
    }


def profiled(enabled: bool) -> cProfile.Profile | None:
    """A running profiler when `--cprofile` was given; `report` prints and stops it."""
    if not enabled:
        return None
    profiler = cProfile.Profile()
    profiler.enable()
    return profiler


def report(profiler: cProfile.Profile | None) -> None:
    if profiler is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)


def run_retrieval(args: argparse.Namespace) -> dict[str, object]:
    """Generate, build the dataset and the index (untimed), then time the replies."""
    begin = time.perf_counter()
    chat = generate_chat(args.messages, args.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileWarning)
        build = build_dataset([chat], PERSONA, DatasetConfig(eval_share=0.1))
    index = ExchangeIndex.from_samples(build.train)
    print(
        f"{len(chat.messages):,} messages -> {len(build.train):,} train / {len(build.eval):,} "
        f"eval samples -> {len(index):,} exchanges indexed "
        f"({time.perf_counter() - begin:.1f} s, untimed)"
    )
    prompts = heldout_prompts(build.eval, args.prompts)
    asyncio.run(time_retrieval(RetrievalBackend(index), prompts[:50]))  # warm the caches
    backend = RetrievalBackend(index, rng=random.Random(args.seed))
    profiler = profiled(args.cprofile)
    replies = asyncio.run(time_retrieval(backend, prompts))
    report(profiler)
    search = Timer()
    for prompt in prompts:
        with search:
            index.search(prompt.history, k=8, now=prompt.now)
    return {
        "messages": len(chat.messages),
        "exchanges": len(index),
        "reply": percentiles(replies),
        "search_only": percentiles(search),
    }


def run_engine(args: argparse.Namespace) -> dict[str, object]:
    """Time `respond` and `handle` + `wait`, each on a fresh SQLite file."""
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as folder:
        settings = Settings(  # type: ignore[call-arg]
            _env_file=None, data_dir=Path(folder), typing_speed=1.0, typing_max_wait_s=90.0
        )
        for via in ("respond", "handle"):
            timer = asyncio.run(_engine_run(args, settings, Path(folder) / f"{via}.db", via))
            out[via] = percentiles(timer)
    return out


async def _engine_run(args: argparse.Namespace, settings: Settings, path: Path, via: str) -> Timer:
    """One engine path: 50 warm-up replies, then the timed ones."""
    db = connect(path)
    engine = PersonaEngine(
        Store(db),
        {PERSONA: PersonaRuntime(PERSONA, InstantBackend())},
        settings,
        clock=Clock(),
        rng=random.Random(args.seed),
        simulate_typing=False,
    )
    rng = random.Random(args.seed)
    await time_engine(engine, 50, rng, f"warm-{via}")
    profiler = profiled(args.cprofile)
    timer = await time_engine(engine, args.replies, rng, via)
    report(profiler)
    await engine.close()
    db.close()
    return timer


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks and print a table (and the figures as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--prompts", type=int, default=DEFAULT_PROMPTS)
    parser.add_argument("--replies", type=int, default=DEFAULT_REPLIES, help="per engine path")
    parser.add_argument("--only", choices=("retrieval", "engine"))
    parser.add_argument("--cprofile", action="store_true", help="print the hottest functions")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    cpu = _pin_to_one_cpu()
    print(f"CPU {cpu}: {_cpu_name()}, Python {platform.python_version()}")
    figures: dict[str, object] = {"seed": args.seed, "machine": _cpu_name()}
    rows: list[tuple[str, dict[str, float], float]] = []
    if args.only in (None, "retrieval"):
        retrieval = run_retrieval(args)
        figures["retrieval"] = retrieval
        rows.append(("RetrievalBackend.reply", retrieval["reply"], 10.0))  # type: ignore[arg-type]
        rows.append(("ExchangeIndex.search, k=8", retrieval["search_only"], 10.0))  # type: ignore[arg-type]
    if args.only in (None, "engine"):
        engine = run_engine(args)
        figures["engine"] = engine
        rows.append(("PersonaEngine.respond", engine["respond"], 5.0))  # type: ignore[arg-type]
        rows.append(("PersonaEngine.handle + wait", engine["handle"], 5.0))  # type: ignore[arg-type]
    columns = ("p50_ms", "p95_ms", "p99_ms", "max_ms", "cpu_p50_ms", "cpu_p99_ms")
    print(f"\n{'path':<28} {'n':>6} " + " ".join(f"{c[:-3]:>8}" for c in columns) + "  goal")
    for name, row, goal in rows:
        verdict = "met" if row["p99_ms"] < goal else "MISSED"
        print(
            f"{name:<28} {row['n']:>6} "
            + " ".join(f"{row[c]:>8.3f}" for c in columns)
            + f"  p99 < {goal:g} ms {verdict}"
        )
    print("milliseconds; cpu: this process's CPU time (the wall clock also counts other jobs)")
    print(json.dumps(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
