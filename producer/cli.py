"""`python -m producer`: send weather telemetry to Event Hubs or the embedded hub."""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from producer.generate import FILE, EventGenerator, Generated, Plan
from producer.sending import BatchingSender, ProducerClient, TargetError, eventhub_client, local_client
from settings import Settings, SettingsError, load_settings

DEFAULT_COUNT = 1000
UNSENDABLE_LINES_SHOWN = 20


@dataclass
class RunSummary:
    """What a run sent: totals, counts by kind, time taken."""

    target: str
    sent: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    unsendable: int = 0
    unsendable_lines: list[int] = field(default_factory=list)  # --from-file: the lines that did not fit
    batches: int = 0
    elapsed: float = 0.0
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed if self.elapsed > 0 else 0.0


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    value = _non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("expected 1 or more, got 0")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:  # also rejects NaN
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _non_negative_float(text)
    if value == 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _start_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("z", "Z"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an RFC 3339 time like 2026-11-22T06:00:00Z, got {text!r}"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the time's offset (Z or +hh:mm), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m producer",
        description="Send realistic weather telemetry (and, on request, malformed, late and duplicate "
        "events) to Azure Event Hubs or to the embedded local event hub.",
        epilog="Same --seed and --start-time => byte-identical events. Without --start-time event "
        "times come from the clock.",
    )
    amount = parser.add_argument_group("how much")
    amount.add_argument(
        "--count",
        type=_non_negative_int,
        help=f"events to send (default {DEFAULT_COUNT} unless --duration is given)",
    )
    amount.add_argument("--duration", type=_positive_float, metavar="SECONDS", help="send for this long")
    amount.add_argument(
        "--rate", type=_non_negative_float, default=0.0, metavar="EPS", help="events per second (0 = max)"
    )

    what = parser.add_argument_group("what")
    what.add_argument("--seed", type=int, help="seed for every random choice (reproducible runs)")
    what.add_argument(
        "--start-time",
        type=_start_time,
        metavar="TIME",
        help="simulated event time of the first event (RFC 3339 with offset); times then advance "
        "by --interval per device reading",
    )
    what.add_argument(
        "--interval",
        type=_positive_float,
        default=60.0,
        metavar="SECONDS",
        help="simulated seconds between two readings of one device (with --start-time; default 60)",
    )
    what.add_argument("--devices", type=_positive_int, default=50, help="weather stations (default 50)")
    what.add_argument("--cities", type=_positive_int, default=10, help="cities they stand in (default 10)")
    what.add_argument(
        "--from-file",
        type=Path,
        metavar="FILE",
        help="send each line of FILE as one raw event body, as-is (valid or not)",
    )

    chaos = parser.add_argument_group("chaos (fractions of the events sent)")
    chaos.add_argument(
        "--bad-rate", type=_fraction, default=0.0, help="malformed events, of every invalid kind, mixed"
    )
    chaos.add_argument(
        "--duplicate-rate", type=_fraction, default=0.0, help="re-sends of an event already sent"
    )
    chaos.add_argument(
        "--late-rate", type=_fraction, default=0.0, help="events with an eventTime in the past"
    )
    chaos.add_argument(
        "--max-lateness",
        type=_positive_float,
        default=3600.0,
        metavar="SECONDS",
        help="how far in the past a late event can be (default 3600)",
    )

    where = parser.add_argument_group("where")
    where.add_argument(
        "--target",
        choices=("local", "eventhub"),
        default="local",
        help="local: the embedded hub under the state folder (default); eventhub: Azure Event Hubs "
        "from EVENTHUB_CONNECTION or EVENTHUB_CONNECTION__fullyQualifiedNamespace",
    )
    where.add_argument(
        "--hub-path", type=Path, metavar="FILE", help="embedded hub file (default: <state folder>/hub.db)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and cross-check arguments; bad ones exit with a clear message and code 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    chaos = args.bad_rate + args.duplicate_rate + args.late_rate
    if chaos > 1.0:
        parser.error(f"--bad-rate + --duplicate-rate + --late-rate must be at most 1, got {chaos:g}")
    if args.from_file is not None:
        if chaos or args.seed is not None or args.start_time is not None:
            parser.error(
                "--from-file sends the file as-is: chaos options, --seed and --start-time don't apply"
            )
        if args.from_file.is_dir():
            parser.error(f"--from-file: {args.from_file} is a folder; give one file of events, one per line")
        if not args.from_file.is_file():
            parser.error(f"--from-file: no such file: {args.from_file}")
    if args.count is None and args.duration is None and args.from_file is None:
        args.count = DEFAULT_COUNT
    if args.hub_path is not None and args.target != "local":
        parser.error("--hub-path only applies to --target local")
    return args


def file_events(path: Path) -> Iterator[Generated]:
    """Each line of the file (without its line break) as one body, keyed by its deviceId if any."""
    with path.open("rb") as lines:
        for line in lines:
            body = line[:-1] if line.endswith(b"\n") else line
            key = None
            try:
                obj = orjson.loads(body)
            except orjson.JSONDecodeError:
                obj = None
            if isinstance(obj, dict) and isinstance(obj.get("deviceId"), str) and obj["deviceId"]:
                key = obj["deviceId"]
            yield Generated(body, key, FILE)


def plan_from_args(args: argparse.Namespace) -> Plan:
    return Plan(
        seed=args.seed,
        devices=args.devices,
        cities=args.cities,
        start_time=args.start_time,
        interval=args.interval,
        bad_rate=args.bad_rate,
        duplicate_rate=args.duplicate_rate,
        late_rate=args.late_rate,
        max_lateness=args.max_lateness,
    )


def make_client(args: argparse.Namespace, settings: Settings) -> ProducerClient:
    if args.target == "eventhub":
        return eventhub_client(settings)
    return local_client(settings, args.hub_path)


def run(args: argparse.Namespace, client: ProducerClient, *, console: Console | None = None) -> RunSummary:
    """Generate (or read) events and send them through ``client``; Ctrl-C stops cleanly.

    Whatever happens, every batch already filled is flushed before returning, and the summary
    counts only what the client accepted.
    """
    source: Iterator[Generated] = (
        file_events(args.from_file) if args.from_file is not None else EventGenerator(plan_from_args(args))
    )
    if args.count is not None:
        source = itertools.islice(source, args.count)
    sender = BatchingSender(client)
    summary = RunSummary(target=args.target)
    count, duration, rate = args.count, args.duration, args.rate
    console = console or Console(stderr=True)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]sending[/]"),
        BarColumn(),
        TextColumn("{task.completed:,} events"),
        TextColumn("{task.fields[eps]:,.0f} ev/s"),
        TimeElapsedColumn(),
        console=console,
        disable=args.quiet,
        transient=False,
    )
    by_kind = summary.by_kind
    started = time.monotonic()
    queued = 0
    # At full speed look at the clock only every 1024 events; when pacing, before each one.
    check_mask = 0 if rate else 1023
    next_refresh = started
    with progress:
        task = progress.add_task("send", total=count, eps=0.0)
        try:
            for item in source:
                if not queued & check_mask:
                    now = time.monotonic()
                    if rate:
                        # Paced: event n is due n/rate seconds in, so --duration D sends exactly D*rate.
                        if duration is not None and queued >= duration * rate:
                            break
                        due = started + queued / rate
                        while now < due:
                            sender.poll()
                            time.sleep(min(due - now, 0.05))
                            now = time.monotonic()
                    elif duration is not None and now - started >= duration:
                        break
                    sender.poll()
                    if now >= next_refresh:
                        next_refresh = now + 0.1
                        progress.update(task, completed=queued, eps=queued / max(now - started, 1e-9))
                if sender.send(item.body, item.partition_key):
                    by_kind[item.kind] += 1
                elif args.from_file is not None:
                    summary.unsendable_lines.append(queued + 1)  # one event per line of the file
                queued += 1
        except KeyboardInterrupt:
            summary.interrupted = True
        finally:
            sender.flush()
            summary.elapsed = time.monotonic() - started
            progress.update(task, completed=queued, eps=queued / summary.elapsed if summary.elapsed else 0.0)
    summary.sent = sender.sent
    summary.unsendable = sender.unsendable
    summary.batches = sender.batches
    return summary


def print_summary(summary: RunSummary, console: Console) -> None:
    table = Table(title=f"sent to {summary.target}" + (" (interrupted)" if summary.interrupted else ""))
    table.add_column("kind")
    table.add_column("events", justify="right")
    for kind, n in sorted(summary.by_kind.items()):
        table.add_row(kind, f"{n:,}")
    if summary.unsendable:
        table.add_row("[red]unsendable (too large for a batch)[/]", f"{summary.unsendable:,}")
    table.add_row("[bold]sent[/]", f"[bold]{summary.sent:,}[/]")
    console.print(table)
    if summary.unsendable_lines:
        lines = summary.unsendable_lines
        shown = ", ".join(f"{n:,}" for n in lines[:UNSENDABLE_LINES_SHOWN])
        more = (
            f" and {len(lines) - UNSENDABLE_LINES_SHOWN:,} more"
            if len(lines) > UNSENDABLE_LINES_SHOWN
            else ""
        )
        console.print(
            f"not sent, too large for an event batch: line{'s' if len(lines) > 1 else ''} {shown}{more} "
            "of the file",
            style="red",
            highlight=False,
        )
    console.print(
        f"{summary.sent:,} events in {summary.batches:,} batches, {summary.elapsed:.2f} s, "
        f"{summary.rate:,.0f} events/s"
    )


def main(argv: Sequence[str] | None = None, settings: Settings | None = None) -> int:
    """Entry point; returns the exit code (2: bad arguments, 1: failure, 130: interrupted)."""
    args = parse_args(argv)
    # soft_wrap: an error naming a path or a setting stays one line when stderr is a file.
    err = Console(stderr=True, soft_wrap=True)
    try:
        settings = settings or load_settings()
        client = make_client(args, settings)
    except (TargetError, SettingsError, ValueError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        return 2
    try:
        summary = run(args, client, console=err)
    except Exception as exc:  # a send failed: say so in one line, the summary says what got through
        err.print(f"error: sending failed: {exc}", markup=False, highlight=False)
        return 1
    finally:
        client.close()
    print_summary(summary, Console())
    return 130 if summary.interrupted else 0


if __name__ == "__main__":
    sys.exit(main())
