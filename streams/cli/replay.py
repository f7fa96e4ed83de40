"""`python -m streams replay FILE`: alerts as sorted-key JSON lines to stdout, a summary to stderr."""

from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

import orjson

from streams.cli.options import add_setting_flags, settings_from_args
from streams.engine.alerts import Alert
from streams.engine.digests import digests_of
from streams.engine.erasures import Erasure, read_erasures
from streams.engine.feedback import Feedback, read_feedback
from streams.replay import ENGINES, REPLAY_DEFAULTS, ReplaySummary, dump_alert, replay

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `replay` sub-command."""
    parser = commands.add_parser("replay", help="replay a JSON-lines event file offline")
    parser.add_argument("file", help="JSON-lines events, or - for stdin")
    parser.add_argument(
        "--engine",
        choices=ENGINES,
        default="python",
        help="python (the reference engine, default) or compiled (the Rust core in core/, same output)",
    )
    parser.add_argument(
        "--erasures",
        metavar="FILE",
        help="JSON-lines erasure requests ({user_id, ts}, schemas/erasure.v1.json), applied as the "
        "watermark reaches each ts (docs/semantics.md §9)",
    )
    parser.add_argument(
        "--feedback",
        metavar="FILE",
        help="JSON-lines feedback ({owner_id, contact_id, action: mute|unmute|snooze, until?, ts}, "
        "schemas/feedback.v1.json), applied as the watermark reaches each ts (docs/semantics.md §11)",
    )
    parser.add_argument(
        "--digests",
        metavar="FILE",
        help="also write the per-owner daily digests due at the end (schemas/digest.v1.json) to FILE, "
        "as sorted-key JSON lines (docs/semantics.md §10)",
    )
    add_setting_flags(parser, REPLAY_DEFAULTS)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Replay the file; exit 0 even when lines are invalid (they are counted)."""
    settings = settings_from_args(args, REPLAY_DEFAULTS)
    summary = ReplaySummary()
    erasures: list[Erasure] = []
    if args.erasures:
        try:
            with open(args.erasures, "rb") as lines:
                erasures = list(read_erasures(lines))
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"replay: --erasures {args.erasures}: {exc}\n")
            return 2
    feedback: list[Feedback] = []
    if args.feedback:
        try:
            with open(args.feedback, "rb") as lines:
                feedback = list(read_feedback(lines))
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"replay: --feedback {args.feedback}: {exc}\n")
            return 2
    source: BinaryIO = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    out = sys.stdout.buffer
    dormant: list[Alert] = []  # kept for the digests only when they are asked for
    try:
        for alert in replay(source, settings, summary, args.engine, erasures=erasures, feedback=feedback):
            out.write(dump_alert(alert))
            if args.digests and alert["kind"] == "dormant":
                dormant.append(alert)
    finally:
        if source is not sys.stdin.buffer:
            source.close()
        out.flush()
    if args.digests:
        known = [(erasure.user, erasure.ts) for erasure in erasures]
        with open(args.digests, "wb") as digest_file:
            for digest in digests_of(dormant, summary.watermark, settings.digest_top, known):
                digest_file.write(
                    orjson.dumps(digest, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
                )
    sys.stderr.buffer.write(orjson.dumps(summary.as_dict(), option=orjson.OPT_APPEND_NEWLINE))
    return 0
