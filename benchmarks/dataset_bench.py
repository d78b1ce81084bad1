"""Time a dataset build of a ~1,000,000-message chat and its writing to every format.

The chat is `profile_bench.generate_chat` (seeded, a group chat with persona "Ana"). The
timed stages, each run once, in order:

    build    build_dataset(chats, persona, DatasetConfig(), profile=...)  (or --set ...)
    write    write_dataset(build, out)        HF + OpenAI (validated) + ShareGPT + extras
    card     write_card(build, out, files)    hashes every written file
    tokens   count_tokens(build)              only for --estimate: recount every sample
    estimate estimate(build, counts=...)      only for --estimate: cost/time per target

The goal is build + write + card (what `wa-persona dataset` does) under 20 s; the two
estimate stages are reported beside it. The style profile the builder takes is made first
and timed on its own (`profile_bench.py` covers it), outside the total. The process is
pinned to one CPU (numpy's thread pools to one thread), like `profile_bench.py`.

    python benchmarks/dataset_bench.py                  # 1,000,000 messages
    python benchmarks/dataset_bench.py --messages 200000 --cprofile write
    python benchmarks/dataset_bench.py --set windows=sliding   # one sample per persona turn
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
import resource  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from profile_bench import (  # noqa: E402
    DEFAULT_SEED,
    PERSONA,
    _cpu_name,
    _pin_to_one_cpu,
    generate_chat,
)

from style.profile import ProfileWarning, build_profile  # noqa: E402
from training.dataset.card import write_card  # noqa: E402
from training.dataset.estimate import count_tokens, estimate, rough_token_count  # noqa: E402
from training.dataset.formats import write_dataset  # noqa: E402

DEFAULT_MESSAGES = 1_000_000
GOAL_S = 20.0
STAGES = ("build", "write", "card", "tokens", "estimate")
GOAL_STAGES = ("build", "write", "card")

T = TypeVar("T")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print (or save) the figures."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=DEFAULT_MESSAGES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--out", type=Path, help="write here (default: a temporary folder)")
    parser.add_argument("--cprofile", choices=STAGES, help="print this stage's 25 hottest calls")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one CPU")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a DatasetConfig setting (VALUE as JSON, else text), e.g. windows=sliding",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    from training.dataset.build import DatasetConfig, build_dataset

    config = DatasetConfig.from_dict(dict(_setting(item) for item in args.set))

    cpu = "not pinned" if args.no_pin else _pin_to_one_cpu()
    started = time.perf_counter()
    chat = generate_chat(args.messages, args.seed)
    print(
        f"{len(chat.messages):,} messages (generated, seed {args.seed}) ready in "
        f"{time.perf_counter() - started:.1f} s; CPU {cpu}"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ProfileWarning)
        begin = time.perf_counter()
        profile = build_profile(chat, PERSONA)
        profile_s = time.perf_counter() - begin
    print(f"  {'(profile':<9}{profile_s:7.2f} s, the builder's input: not in the total)")

    with tempfile.TemporaryDirectory(prefix="dataset_bench_") as scratch:
        out = args.out or Path(scratch)
        seconds: dict[str, float] = {}

        def timed(stage: str, run: Callable[[], T]) -> T:
            profiler = cProfile.Profile() if args.cprofile == stage else None
            begin = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            result = run()
            if profiler is not None:
                profiler.disable()
            seconds[stage] = time.perf_counter() - begin
            print(f"  {stage:<9}{seconds[stage]:7.2f} s")
            if profiler is not None:
                pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            return result

        build = timed("build", lambda: build_dataset([chat], PERSONA, config, profile=profile))
        files = timed("write", lambda: write_dataset(build, out))
        timed("card", lambda: write_card(build, out, files))
        counts = timed("tokens", lambda: count_tokens(build))
        timed("estimate", lambda: estimate(build, token_counter=rough_token_count, counts=counts))

        total = sum(seconds[stage] for stage in GOAL_STAGES)
        figures: dict[str, Any] = {
            "messages": len(chat.messages),
            "settings": dict(_setting(item) for item in args.set),
            "train_samples": len(build.train),
            "eval_samples": len(build.eval),
            "written_messages": sum(len(s.turns) + 1 for s in [*build.train, *build.eval]),
            "train_tokens": counts.train.total,
            "seconds": {stage: round(value, 3) for stage, value in seconds.items()},
            "total_seconds": round(total, 3),
            "goal_seconds": GOAL_S,
            "goal_met": total < GOAL_S,
            "profile_seconds": round(profile_s, 3),
            "files_mb": {
                key: round(path.stat().st_size / 1e6, 1) for key, path in sorted(files.items())
            },
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "python": platform.python_version(),
            "machine": _cpu_name(),
        }
    extra = seconds["tokens"] + seconds["estimate"]
    print(
        f"{figures['train_samples']:,} train + {figures['eval_samples']:,} eval samples "
        f"({figures['written_messages']:,} messages a format); build + write + card "
        f"{total:.2f} s, goal under {GOAL_S:.0f} s: {'met' if figures['goal_met'] else 'NOT met'}"
        f" (+{extra:.2f} s with --estimate); peak RSS {figures['peak_rss_mb']} MB"
    )
    print(json.dumps(figures))
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _setting(item: str) -> tuple[str, Any]:
    key, _, value = item.partition("=")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


if __name__ == "__main__":
    raise SystemExit(main())
