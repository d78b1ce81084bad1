"""Compare our WhatsApp export parser with whatstk and chat-miner on one generated file.

Each parser runs in its own subprocess, so peak memory (`ru_maxrss`) belongs to that
parser alone, and only the parse itself is timed, not interpreter start or imports.

    python benchmarks/parse_bench.py                   # 1,000,000 messages, all parsers
    python benchmarks/parse_bench.py --messages 100000 --skip-peers --json out.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

DEFAULT_MESSAGES = 1_000_000
DEFAULT_SEED = 20240501
DEFAULT_WORKDIR = Path(__file__).resolve().parent / ".data"
GENERATOR_VERSION = 1  # bump when the generated text changes, so cached files are rebuilt

# whatstk needs the header spelled out (its auto-detection reads the whole file first).
WHATSTK_HFORMAT = "%d/%m/%Y, %H:%M - %name:"

# Exit status of a child whose parser is not installed, so the parent can say how to fix it.
EXIT_NOT_INSTALLED = 3

# Memory "does not grow" when the full file peaks within this much of the 1/10 file.
GROWTH_TOLERANCE_MB = 16.0

AUTHORS = ["Alice", "Bob Okafor", "+44 7700 900123", "María José", "Ravi"]
AUTHOR_WEIGHTS = [34, 28, 18, 12, 8]

LOREM = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt "
    "ut labore et dolore magna aliqua enim ad minim veniam quis nostrud exercitation ullamco "
    "laboris nisi aliquip ex ea commodo consequat duis aute irure in reprehenderit voluptate "
    "velit esse cillum eu fugiat nulla pariatur excepteur sint occaecat cupidatat non proident "
    "sunt culpa qui officia deserunt mollit anim id est laborum haha ok yeah tomorrow tonight "
    "maybe sure lol café naïve jalapeño crème brûlée über straße"
)
WORDS = LOREM.split()

EMOJI = ["😂", "❤️", "👍", "🙏", "😭", "🔥", "🎉", "😅", "🤔", "👀", "🇬🇧", "🙌🏽"]
# Zero-width-joiner sequences: one visible glyph, several code points.
ZWJ_EMOJI = ["👨‍👩‍👧‍👦", "🏳️‍🌈", "👩🏽‍💻", "❤️‍🔥", "🧑‍🤝‍🧑", "🐻‍❄️", "👁️‍🗨️"]
SHORT_REPLIES = ["ok", "haha", "yes 👍", "no", "lol", "sure", "😂😂😂", "on my way", "k", "thanks!"]


@dataclass(slots=True)
class Result:
    """One parser's run on one file, as its child process reported it."""

    name: str
    messages: int
    seconds: float
    peak_rss_mb: float
    import_rss_mb: float
    file_messages: int

    @property
    def rate(self) -> float:
        """Messages per second."""
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


# --- the generated export ---------------------------------------------------------------


def _sentence(rng: random.Random, n_words: int) -> str:
    """Lorem-ish words with the odd capital, punctuation and emoji, like chat text."""
    words = rng.choices(WORDS, k=n_words)
    words[0] = words[0].capitalize()
    text = " ".join(words)
    roll = rng.random()
    if roll < 0.25:
        text += rng.choice(".?!")
    elif roll < 0.40:
        text += " " + rng.choice(EMOJI)
    elif roll < 0.46:
        text += " " + rng.choice(ZWJ_EMOJI)
    return text


def _body(rng: random.Random) -> str:
    """One message body: mostly text of varied length, some emoji, media, links, deletions."""
    roll = rng.random()
    if roll < 0.68:
        # Chat lengths are skewed: many short lines, a long tail of paragraphs.
        text = _sentence(rng, min(1 + int(rng.expovariate(1 / 9)), 150))
    elif roll < 0.80:
        text = rng.choice(SHORT_REPLIES)
    elif roll < 0.88:
        text = "".join(rng.choices(EMOJI + ZWJ_EMOJI, k=rng.randint(1, 4)))
    elif roll < 0.93:
        text = "<Media omitted>"
    elif roll < 0.95:
        text = f"https://example.com/{rng.choice(WORDS)}/{rng.randrange(10**6)} look"
    elif roll < 0.96:
        text = "This message was deleted"
    else:
        text = _sentence(rng, rng.randint(3, 20)) + " 😅"
    if rng.random() < 0.01 and not text.startswith(("<", "This")):
        text += " <This message was edited>"
    if rng.random() < 0.03:
        # Continuation lines never start with a date, so every parser can tell them apart.
        extra = [
            "" if rng.random() < 0.1 else _sentence(rng, rng.randint(1, 25))
            for _ in range(rng.randint(1, 4))
        ]
        text = "\n".join([text, *extra])
    return text


def _export_lines(n: int, seed: int) -> Iterator[str]:
    """Yield Android export lines, `DD/MM/YYYY, HH:MM - Author: text`, time never going back."""
    rng = random.Random(seed)
    start = datetime(2021, 3, 14, 8, 30)
    mean_gap = 3 * 365 * 24 * 60 / max(n, 1)  # minutes, so any N spans about three years
    minute = 0
    stamp_minute, stamp = -1, ""
    for _ in range(n):
        minute += int(rng.expovariate(1 / mean_gap))
        if minute != stamp_minute:
            stamp_minute, stamp = minute, f"{start + timedelta(minutes=minute):%d/%m/%Y, %H:%M}"
        author = rng.choices(AUTHORS, AUTHOR_WEIGHTS)[0]
        yield f"{stamp} - {author}: {_body(rng)}\n"


def generated_export(workdir: Path, n: int, seed: int) -> Path:
    """The export for (n, seed), generated once and then reused from `workdir`."""
    path = workdir / f"whatsapp_android_n{n}_seed{seed}_v{GENERATOR_VERSION}.txt"
    if path.exists():
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8", newline="\n") as out:
        chunk: list[str] = []
        for line in _export_lines(n, seed):
            chunk.append(line)
            if len(chunk) >= 10_000:
                out.write("".join(chunk))
                chunk.clear()
        out.write("".join(chunk))
    partial.replace(path)  # a killed run never leaves a half-written file behind the cache key
    return path


# --- the child side: one parser per process ---------------------------------------------


def _prepare_ours(path: Path) -> Callable[[], int]:
    """Count messages from `iter_messages`, the streaming API."""
    from style.parse import iter_messages

    def parse() -> int:
        return sum(1 for _ in iter_messages(path))

    return parse


class _NullLines:
    """A stdout that encodes and discards text, counting lines: `> /dev/null` plus `wc -l`."""

    def __init__(self) -> None:
        self.lines = 0
        self._null = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()

    def write(self, text: str) -> int:
        self.lines += text.count("\n")  # JSON escapes newlines, so each one ends a record
        return self._null.write(text)

    def flush(self) -> None:
        self._null.flush()

    def close(self) -> None:
        self._null.close()


def _prepare_ours_jsonl(path: Path) -> Callable[[], int]:
    """`wa-persona parse PATH > /dev/null`, run in process so start-up is not timed."""
    from typer.main import get_command

    from bot.cli import app

    command = get_command(app)

    def parse() -> int:
        sink = _NullLines()
        with contextlib.redirect_stdout(sink):  # type: ignore[type-var]
            status = command.main(
                args=["parse", str(path)], prog_name="wa-persona", standalone_mode=False
            )
        sink.close()
        if status:
            raise RuntimeError(f"wa-persona parse exited with status {status}")
        return sink.lines

    return parse


def _prepare_whatstk(path: Path) -> Callable[[], int]:
    """whatstk's documented entry point, given the header format and no size cap."""
    from whatstk.whatsapp.objects import WhatsAppChat

    def parse() -> int:
        # max_size=None: whatstk refuses files over 50 MB by default, and 1M messages is 88 MB.
        chat = WhatsAppChat.from_source(
            filepath=str(path), auto_header=False, hformat=WHATSTK_HFORMAT, max_size=None
        )
        return len(chat.df)

    return parse


def _prepare_chatminer(path: Path) -> Callable[[], int]:
    """chat-miner's WhatsAppParser to a DataFrame, with its progress bar and logging off."""
    os.environ["TQDM_DISABLE"] = "1"  # read when tqdm is imported
    import logging

    from chatminer.chatparsers import WhatsAppParser

    logging.disable(logging.CRITICAL)  # it logs one line per system message at INFO

    def parse() -> int:
        parser = WhatsAppParser(str(path))
        parser.parse_file()
        return len(parser.parsed_messages.get_df())

    return parse


PARSERS: dict[str, Callable[[Path], Callable[[], int]]] = {
    "ours": _prepare_ours,
    "ours-jsonl": _prepare_ours_jsonl,
    "whatstk": _prepare_whatstk,
    "chat-miner": _prepare_chatminer,
}
PACKAGES = {
    "ours": "wa-persona",
    "ours-jsonl": "wa-persona",
    "whatstk": "whatstk",
    "chat-miner": "chat-miner",
}


def _peak_rss_mb() -> float:
    """This process's peak resident set so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_child(name: str, path: Path) -> int:
    """Import one parser, time its parse of `path`, and print one JSON line."""
    try:
        parse = PARSERS[name](path)
    except ImportError as exc:
        print(f"{PACKAGES[name]} is not importable here ({exc})", file=sys.stderr)
        return EXIT_NOT_INSTALLED
    import_rss = _peak_rss_mb()
    start = time.perf_counter()
    messages = parse()
    seconds = time.perf_counter() - start
    record = {
        "name": name,
        "messages": messages,
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "import_rss_mb": import_rss,
    }
    print(json.dumps(record))
    return 0


# --- the parent side --------------------------------------------------------------------


class ChildFailed(Exception):
    """A parser's subprocess exited non-zero or printed no result."""


def run_parser(name: str, path: Path, file_messages: int) -> Result:
    """Run one parser in a fresh interpreter, so its memory and imports are its own."""
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", name, str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode == EXIT_NOT_INSTALLED:
        hint = (
            "pip install -e ."
            if name.startswith("ours")
            else "pip install -r benchmarks/requirements.txt"
        )
        raise ChildFailed(f"{name}: {proc.stderr.strip()}; {hint}, or pass --skip-peers")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise ChildFailed(f"{name} exited with status {proc.returncode}:\n{tail}")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            return Result(**json.loads(line), file_messages=file_messages)
    raise ChildFailed(f"{name} printed no result; stdout was {proc.stdout[-500:]!r}")


def machine_facts() -> dict[str, Any]:
    """What a reader needs to compare these numbers with their own."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(
                (line.split(":", 1)[1].strip() for line in info if line.startswith("model name")),
                cpu,
            )
    except OSError:
        pass  # not Linux; platform's answer stands
    versions = {}
    for package in ("wa-persona", "whatstk", "chat-miner", "pandas", "polars"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def speed_ratios(results: list[Result], n: int) -> dict[str, dict[str, float]]:
    """Each full-file parser's speed divided by each peer's (above 1: faster than the peer)."""
    full = {r.name: r for r in results if r.file_messages == n}
    ratios: dict[str, dict[str, float]] = {}
    for name, result in full.items():
        ratios[name] = {
            peer: result.rate / full[peer].rate
            for peer in ("whatstk", "chat-miner")
            if peer in full
        }
    return ratios


def count_warnings(results: list[Result], n: int) -> list[str]:
    """Every parser should find exactly the messages the generator wrote."""
    return [
        f"{r.name} found {r.messages:,} messages in a file of {r.file_messages:,} "
        f"({r.messages - r.file_messages:+,})"
        for r in results
        if r.messages != r.file_messages
    ]


def memory_check(results: list[Result], n: int) -> dict[str, Any] | None:
    """Peak RSS of the JSONL path on the 1/10 file and the full file; flat means streaming."""
    jsonl = {r.file_messages: r for r in results if r.name == "ours-jsonl"}
    small_n = max(n // 10, 1)
    if n not in jsonl or small_n not in jsonl or small_n == n:
        return None
    small, full = jsonl[small_n].peak_rss_mb, jsonl[n].peak_rss_mb
    return {
        "small_messages": small_n,
        "small_peak_rss_mb": small,
        "full_messages": n,
        "full_peak_rss_mb": full,
        "growth_mb": full - small,
        "flat": full - small <= GROWTH_TOLERANCE_MB,
    }


def _label(result: Result, n: int) -> str:
    """Row label; the small memory-check run says which file it read."""
    if result.file_messages == n:
        return result.name
    return f"{result.name} 1/10"


def print_report(results: list[Result], n: int, facts: dict[str, Any]) -> None:
    """A table of the runs, with rich if it is installed."""
    ratios = speed_ratios(results, n)
    headers = ["parser", "messages", "seconds", "msgs/s", "peak RSS MB", "import RSS MB"]
    headers += ["vs whatstk", "vs chat-miner"]
    rows = []
    for r in results:
        mine = ratios.get(r.name, {}) if r.file_messages == n else {}
        rows.append(
            [
                _label(r, n),
                f"{r.messages:,}",
                f"{r.seconds:.2f}",
                f"{r.rate:,.0f}",
                f"{r.peak_rss_mb:,.0f}",
                f"{r.import_rss_mb:,.0f}",
                f"{mine['whatstk']:.2f}x" if "whatstk" in mine else "",
                f"{mine['chat-miner']:.2f}x" if "chat-miner" in mine else "",
            ]
        )
    title = f"{n:,} messages · {facts['cpu']} · {facts['nproc']} CPUs · Python {facts['python']}"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)]
        print(title)
        for row in [headers, *rows]:
            print(
                "  ".join(
                    cell.rjust(w) if i else cell.ljust(w)
                    for i, (cell, w) in enumerate(zip(row, widths, strict=True))
                )
            )
        return
    table = Table(title=title)
    for i, header in enumerate(headers):
        table.add_column(header, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)  # a pipe or file would otherwise wrap at 80 columns
    console.print(table)


def make_parser() -> argparse.ArgumentParser:
    """The command line: sizes, where files go, which parsers run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--messages", type=int, default=DEFAULT_MESSAGES, help="messages in the file"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="generator seed")
    parser.add_argument(
        "--workdir", type=Path, default=DEFAULT_WORKDIR, help="where generated files are cached"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the results here")
    parser.add_argument("--skip-peers", action="store_true", help="run only our parser")
    parser.add_argument("--child", nargs=2, metavar=("NAME", "PATH"), help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Generate the files, run every parser in its own process, report."""
    args = make_parser().parse_args(argv)
    if args.child:
        name, path = args.child
        return run_child(name, Path(path))
    if args.messages < 1:
        print("--messages must be at least 1", file=sys.stderr)
        return 2

    n, small_n = args.messages, max(args.messages // 10, 1)
    started = time.perf_counter()
    path = generated_export(args.workdir, n, args.seed)
    small_path = generated_export(args.workdir, small_n, args.seed)
    print(
        f"file: {path} ({path.stat().st_size / 2**20:,.1f} MiB, "
        f"ready in {time.perf_counter() - started:.1f}s)",
        file=sys.stderr,
    )

    plan = [("ours", path, n), ("ours-jsonl", path, n)]
    if small_n != n:
        plan.append(("ours-jsonl", small_path, small_n))
    if not args.skip_peers:
        plan += [("whatstk", path, n), ("chat-miner", path, n)]

    results: list[Result] = []
    errors: list[str] = []
    for name, file, file_n in plan:
        print(f"running {name} on {file_n:,} messages...", file=sys.stderr)
        try:
            results.append(run_parser(name, file, file_n))
        except ChildFailed as exc:
            errors.append(str(exc))

    facts = machine_facts()
    if results:
        print_report(results, n, facts)
    warnings = count_warnings(results, n)
    for warning in warnings:
        print(f"warning: message counts differ: {warning}", file=sys.stderr)
    if results and not warnings:
        print(f"message counts agree: every parser found every message ({n:,})")
    memory = memory_check(results, n)
    if memory:
        verdict = "flat" if memory["flat"] else "GROWS with file size"
        print(
            f"ours-jsonl peak RSS: {memory['small_peak_rss_mb']:.0f} MB at {small_n:,} messages, "
            f"{memory['full_peak_rss_mb']:.0f} MB at {n:,} "
            f"({memory['growth_mb']:+.0f} MB): {verdict}"
        )
    if args.json:
        report = {
            "messages": n,
            "seed": args.seed,
            "file": str(path),
            "file_bytes": path.stat().st_size,
            "machine": facts,
            "results": [asdict(r) | {"messages_per_s": r.rate} for r in results],
            "ratios": speed_ratios(results, n),
            "memory_check": memory,
            "count_warnings": warnings,
            "errors": errors,
        }
        args.json.write_text(
            json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    for error in errors:
        print(f"error: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
