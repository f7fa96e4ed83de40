"""A bare Faust agent on the input topics that only parses each record: Faust's own per-record ceiling.

Run as a process of its own (`python -m bench.bare_faust`), with the Faust
settings the service uses for its input (poll size, stream buffer, at least
once); it writes `{"records": N, "eps": ...}` to `--out`, the rate from its
first record to its N-th, then exits.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

import faust
import orjson


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--broker", required=True, help="kafka://host:port")
    parser.add_argument("--topics", required=True, help="comma-separated input topics")
    parser.add_argument("--records", type=int, required=True, help="records to read before reporting")
    parser.add_argument("--out", type=Path, required=True, help="where the JSON figures go")
    args = parser.parse_args()
    datadir = tempfile.mkdtemp(prefix="bare-faust-")  # Faust's default is a directory in the working one
    app = faust.App(
        f"bare-faust-{uuid.uuid4().hex[:6]}",
        broker=args.broker,
        datadir=datadir,
        store="memory://",
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        broker_max_poll_records=2000,
        stream_buffer_maxsize=8192,
        autodiscover=False,
    )
    topic = app.topic(*args.topics.split(","), value_serializer="raw", key_serializer="raw")
    seen = 0
    started = 0.0

    @app.agent(topic)
    async def parse(stream: faust.StreamT[bytes]) -> None:
        nonlocal seen, started
        async for value in stream:
            if not seen:
                started = time.perf_counter()
            orjson.loads(value)
            seen += 1
            if seen == args.records:
                elapsed = time.perf_counter() - started
                args.out.write_bytes(orjson.dumps({"records": seen, "eps": seen / elapsed}))
                shutil.rmtree(datadir, ignore_errors=True)
                os._exit(0)  # the figure is out; Faust's shutdown would only add time

    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()


if __name__ == "__main__":
    main()
