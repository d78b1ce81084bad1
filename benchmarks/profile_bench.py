"""Time `build_profile` on a generated (seeded) or parsed chat of about a million messages.

The process is pinned to one CPU and numpy's thread pools are limited to one thread, so the
figure is single-core. Only `build_profile` is timed: generating or parsing the chat is not.

    python benchmarks/profile_bench.py                      # 1,000,000 generated messages
    python benchmarks/profile_bench.py --messages 200000 --cprofile
    python benchmarks/profile_bench.py --parse export.txt --persona "Alice"
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import cProfile  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from datetime import datetime, timedelta  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from style.messages import Chat, Media, MediaType, Message, MessageKind  # noqa: E402
from style.profile import ProfileWarning, build_profile  # noqa: E402

DEFAULT_MESSAGES = 1_000_000
DEFAULT_SEED = 20240501
PERSONA = "Ana"
OTHERS = ("Bob Okafor", "María José", "Ravi")

PERSONA_WORDS = str.split(
    "omg u ur idk tbh ngl lol lmaooo hahaha sooo yesss noooo literally wait what ok so "
    "im dont gonna wanna rn btw the way i screamed obsessed mood same that is cute "
    "tonight tomorrow dinner pizza café jalapeño über naïve"
)
OTHER_WORDS = str.split(
    "I think that is a good idea and we should meet tomorrow at the station. Are you free "
    "on Friday? Let me know what you think, thanks! The meeting went well, see you later. "
    "Haha, that sounds great. I'm not sure yet, maybe next week works better for me."
)
PERSONA_EMOJI = ("😂", "😂😂😂", "✨", "🥹", "💀", "😭", "❤️", "👍🏽", "👩🏽‍💻", "🇬🇧")
OTHER_EMOJI = ("🙂", "👍", "😊")


def generate_chat(messages: int, seed: int) -> Chat:
    """A deterministic group chat: conversations of turns, the persona bursty and quick."""
    rng = random.Random(seed)
    out: list[Message] = []
    ts = datetime(2021, 1, 1, 9, 0, 0)
    while len(out) < messages:
        ts += timedelta(seconds=int(rng.lognormvariate(9.5, 1.0)))  # hours between chats
        author = PERSONA if rng.random() < 0.5 else rng.choice(OTHERS)
        for _ in range(rng.randint(2, 30)):
            mine = author == PERSONA
            for index in range(rng.choice((1, 1, 2, 3, 4)) if mine else rng.choice((1, 1, 2))):
                if index:
                    ts += timedelta(seconds=rng.randint(2, 25 if mine else 60))
                out.append(_message(rng, ts, author, mine))
            ts += timedelta(seconds=int(rng.lognormvariate(3.5 if not mine else 5.5, 1.2)))
            author = rng.choice(OTHERS) if mine else PERSONA
    del out[messages:]
    return Chat(
        source="generated",
        dialect="generated",
        messages=out,
        participants=[PERSONA, *OTHERS],
    )


def _message(rng: random.Random, ts: datetime, author: str, mine: bool) -> Message:
    roll = rng.random()
    if roll < 0.03:
        media = Media(MediaType.IMAGE, omitted=True)
        return Message(ts, author, "", MessageKind.MEDIA, media=media)
    if roll < 0.035:
        return Message(ts, author, "", MessageKind.DELETED)
    words = PERSONA_WORDS if mine else OTHER_WORDS
    start = rng.randrange(len(words))
    text = " ".join(words[start : start + rng.randint(1, 9 if mine else 14)])
    if mine and rng.random() < 0.4:
        text += rng.choice(("", " ")) + rng.choice(PERSONA_EMOJI)
    elif not mine and rng.random() < 0.05:
        text += " " + rng.choice(OTHER_EMOJI)
    return Message(ts, author, text or "ok")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (or save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--parse", type=Path, help="profile this export instead of generating")
    parser.add_argument("--persona", default=PERSONA)
    parser.add_argument("--repeat", type=int, default=1, help="runs; the best is reported")
    parser.add_argument("--cprofile", action="store_true", help="print the 25 hottest functions")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    cpu = _pin_to_one_cpu()
    started = time.perf_counter()
    if args.parse is not None:
        from style.parse import load_chat

        chat = load_chat(args.parse)
        origin = f"parsed {args.parse}"
    else:
        chat = generate_chat(args.messages, args.seed)
        origin = f"generated, seed {args.seed}"
    prepared = time.perf_counter() - started
    print(f"{len(chat.messages):,} messages ({origin}) ready in {prepared:.1f} s; CPU {cpu}")

    timings = []
    profile = None
    for _ in range(args.repeat):
        profiler = cProfile.Profile() if args.cprofile else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ProfileWarning)
            begin = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            profile = build_profile(chat, args.persona)
            if profiler is not None:
                profiler.disable()
            timings.append(time.perf_counter() - begin)
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    assert profile is not None
    best = min(timings)
    figures = {
        "messages": len(chat.messages),
        "persona_messages": profile.counts.messages,
        "seconds": round(best, 3),
        "messages_per_second": round(len(chat.messages) / best),
        "runs": [round(t, 3) for t in timings],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "python": platform.python_version(),
        "machine": _cpu_name(),
        "conversations": profile.conversations.conversations,
        "gap_s": profile.conversations.gap_s,
    }
    print(
        f"build_profile: {best:.2f} s for {len(chat.messages):,} messages = "
        f"{figures['messages_per_second']:,} messages/s (one core; runs: {figures['runs']}); "
        f"peak RSS {figures['peak_rss_mb']} MB"
    )
    print(json.dumps(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _pin_to_one_cpu() -> str:
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned"
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"{cpu} (pinned)"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    raise SystemExit(main())
