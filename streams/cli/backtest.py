"""`python -m streams backtest FILE`: replay history under a grid of settings; figures and a summary."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from streams.backtest.grid import DEFAULT_K, DEFAULT_MIN_SILENCE_DAYS, make_grid, parse_numbers
from streams.backtest.report import summary_dict, summary_text
from streams.backtest.runner import read_lines, run_backtest
from streams.backtest.truth import load_truth
from streams.cli.options import add_setting_flags, settings_from_args
from streams.replay import REPLAY_DEFAULTS

__all__ = ["add_parser", "run"]


def _numbers(text: str) -> tuple[float, ...]:
    try:
        return parse_numbers(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _joined(values: tuple[float, ...]) -> str:
    return ",".join(f"{value:g}" for value in values)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `backtest` sub-command (its `--k` is a list: it replaces the single-value flag)."""
    parser = commands.add_parser(
        "backtest",
        help="measure alert volume, false alarms, fades caught and delay over a settings grid",
        conflict_handler="resolve",
    )
    parser.add_argument("file", type=Path, help="JSON-lines events (a file: it is replayed once per setting)")
    parser.add_argument(
        "--truth", type=Path, help="planted dormancies (`generate --truth`): adds precision/recall"
    )
    parser.add_argument(
        "--out-dir", type=Path, default=Path("backtest-out"), help="figures and summaries [%(default)s]"
    )
    parser.add_argument("--title", help="figure title prefix [the file name]")
    parser.add_argument(
        "--json", action="store_true", help="print the JSON summary instead of the text table"
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="worker processes, one setting each [%(default)s]"
    )
    add_setting_flags(parser, REPLAY_DEFAULTS)
    parser.add_argument(
        "--k",
        dest="grid_k",
        type=_numbers,
        default=DEFAULT_K,
        help=f"grid of k values [{_joined(DEFAULT_K)}]",
    )
    parser.add_argument(
        "--min-silence-days",
        dest="grid_min_silence_days",
        type=_numbers,
        default=DEFAULT_MIN_SILENCE_DAYS,
        help=f"grid of minimum silences in days; overrides --min-silence-ms [{_joined(DEFAULT_MIN_SILENCE_DAYS)}]",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        help="another run's summary.json (e.g. the same file under --rule v1): its points are drawn in tradeoff.png too",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the grid, write the PNGs, `summary.txt` and `summary.json` to `--out-dir`, print one summary."""
    base = settings_from_args(args, REPLAY_DEFAULTS)
    points = make_grid(base, args.grid_k, args.grid_min_silence_days)
    truth = load_truth(args.truth) if args.truth is not None else None
    lines = read_lines(args.file)
    result = run_backtest(lines, points, truth, jobs=args.jobs, path=args.file)
    source = str(args.file)
    try:  # matplotlib is the `plots` extra: the service itself does not need it
        from streams.backtest.plots import write_figures  # noqa: PLC0415
    except ModuleNotFoundError as exc:
        sys.stderr.write(
            f"backtest: {exc.name} is missing: install the plots extra (pip install '.[plots]')\n"
        )
        return 2
    compare = orjson.loads(args.compare.read_bytes())["settings"] if args.compare is not None else []
    figures = write_figures(result, args.out_dir, args.title or args.file.name, compare)
    text = summary_text(result, source)
    summary = summary_dict(result, source, figures)
    encoded = orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    (args.out_dir / "summary.txt").write_text(text)
    (args.out_dir / "summary.json").write_bytes(encoded)
    sys.stdout.buffer.write(encoded if args.json else text.encode())
    sys.stdout.buffer.flush()
    return 0
