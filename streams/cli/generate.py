"""`python -m streams generate`: a seeded synthetic interaction stream (JSON lines or Kafka) and its truth."""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from streams.generate import GeneratorConfig, generate
from streams.generate.mentions import MentionConfig, mention_lines
from streams.generate.output import Throttle, send_lines, write_lines, write_truth
from streams.settings import Settings

__all__ = ["add_parser", "run"]


def _date_ms(text: str) -> int:
    """`YYYY-MM-DD` (UTC midnight) as epoch ms."""
    try:
        day = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a YYYY-MM-DD date: {text!r}") from exc
    return int(day.timestamp() * 1000)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `generate` sub-command."""
    defaults = GeneratorConfig()
    mentions = MentionConfig()
    parser = commands.add_parser("generate", help="write a seeded synthetic interaction stream")
    parser.add_argument(
        "--profile",
        choices=("planted", "mentions"),
        default="planted",
        help="planted: ties with planted dormancies and their truth; mentions: a heavy-tailed stream "
        "shaped like public Twitter mention data (Zipf-like users, most pairs seen once) [%(default)s]",
    )
    parser.add_argument(
        "--users", type=int, help=f"number of users [{defaults.users}; mentions: {mentions.users}]"
    )
    parser.add_argument(
        "--days", type=int, help=f"days of history [{defaults.days}; mentions: {mentions.days}]"
    )
    parser.add_argument(
        "--events", type=int, default=mentions.events, help="events (mentions profile only) [%(default)s]"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed [%(default)s]")
    parser.add_argument(
        "--start", type=_date_ms, default=defaults.start_ms, help="first day, UTC [2024-01-01]"
    )
    parser.add_argument(
        "--live", action="store_true", help="start the timeline at the wall clock (live demos)"
    )
    parser.add_argument(
        "--ties-per-user", type=float, default=defaults.ties_per_user, help="mean ties per user [%(default)s]"
    )
    parser.add_argument(
        "--reciprocal", type=float, default=defaults.reciprocal, help="P(tie is reciprocal) [%(default)s]"
    )
    parser.add_argument(
        "--fade", type=float, default=defaults.fade, help="P(a settled tie fades) [%(default)s]"
    )
    parser.add_argument(
        "--revive", type=float, default=defaults.revive, help="P(a faded tie revives) [%(default)s]"
    )
    parser.add_argument(
        "--noise",
        type=float,
        default=defaults.noise_per_user_day,
        help="one-off events per user-day [%(default)s]",
    )
    parser.add_argument("--out", type=Path, help="events file (default: stdout)")
    parser.add_argument("--truth", type=Path, help="write the planted dormancies here (JSON lines)")
    parser.add_argument(
        "--to-kafka", action="store_true", help="send to the input topics (STREAMS_BROKER) instead"
    )
    parser.add_argument(
        "--rate", type=float, default=0.0, help="events/s when sending to Kafka (0: as fast as possible)"
    )
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> GeneratorConfig:
    """The generator config the flags describe."""
    defaults = GeneratorConfig()
    return GeneratorConfig(
        users=defaults.users if args.users is None else args.users,
        days=defaults.days if args.days is None else args.days,
        seed=args.seed, start_ms=_start_ms(args), ties_per_user=args.ties_per_user,
        reciprocal=args.reciprocal, fade=args.fade, revive=args.revive, noise_per_user_day=args.noise,
    )  # fmt: skip


def mention_config_from_args(args: argparse.Namespace) -> MentionConfig:
    """The mention-stream config the flags describe (`--profile mentions`)."""
    defaults = MentionConfig()
    return MentionConfig(
        events=args.events,
        users=defaults.users if args.users is None else args.users,
        days=defaults.days if args.days is None else args.days,
        seed=args.seed,
        start_ms=_start_ms(args),
    )


def _start_ms(args: argparse.Namespace) -> int:
    return int(time.time()) * 1000 if args.live else int(args.start)


def _send(lines: list[bytes], rate: float) -> int:
    from streams.cli.produce import route  # noqa: PLC0415 - Kafka client only when asked for
    from streams.kafka_admin import producer  # noqa: PLC0415

    settings = Settings()
    client = producer(settings)
    try:
        return send_lines(lines, client, settings, route, Throttle(rate))
    finally:
        client.close()


def _emit(lines: list[bytes], args: argparse.Namespace) -> int:
    """Send or write the lines as the flags say; return how many."""
    if args.to_kafka:
        return _send(lines, args.rate)
    if args.out is None:
        count = write_lines(lines, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return count
    with args.out.open("wb") as out:
        return write_lines(lines, out)


def run_mentions(args: argparse.Namespace) -> int:
    """`--profile mentions`: generate, write or send the events, and report counts on stderr."""
    config = mention_config_from_args(args)
    try:
        config.validate()
        if args.truth is not None:
            raise ValueError("--truth: the mentions profile plants no dormancies")
    except ValueError as exc:
        sys.stderr.buffer.write(f"generate: {exc}\n".encode())
        return 2
    started = time.perf_counter()
    lines = mention_lines(config)
    generated = time.perf_counter() - started
    count = _emit(lines, args)
    report: dict[str, Any] = {
        "events": count,
        "generate_seconds": round(generated, 3),
        "events_per_second": round(count / generated) if generated > 0 else None,
        "config": dataclasses.asdict(config),
    }
    sys.stderr.buffer.write(orjson.dumps(report, option=orjson.OPT_APPEND_NEWLINE))
    return 0


def run(args: argparse.Namespace) -> int:
    """Generate; write or send the events, write the truth, and report counts on stderr."""
    if args.profile == "mentions":
        return run_mentions(args)
    config = config_from_args(args)
    try:
        config.validate()
    except ValueError as exc:
        sys.stderr.buffer.write(f"generate: {exc}\n".encode())
        return 2
    started = time.perf_counter()
    stream = generate(config)
    generated = time.perf_counter() - started
    count = _emit(stream.lines, args)
    if args.truth is not None:
        with args.truth.open("wb") as out:
            write_truth(stream.truth, out)
    report: dict[str, Any] = {
        "events": count,
        "planted_dormancies": len(stream.truth),
        "ties": len(stream.ties),
        "generate_seconds": round(generated, 3),
        "events_per_second": round(count / generated) if generated > 0 else None,
        "config": dataclasses.asdict(config),
    }
    sys.stderr.buffer.write(orjson.dumps(report, option=orjson.OPT_APPEND_NEWLINE))
    return 0
