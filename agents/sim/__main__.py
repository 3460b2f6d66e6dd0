"""``python -m agents.sim --port N``: run the simulated model server in the foreground.

Prints exactly one ``sim listening on http://HOST:PORT/v1`` line (flushed) so a
parent process can read the real port when ``--port 0`` is used.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .server import SimServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m agents.sim", description="Deterministic OpenAI-compatible sim.")
    parser.add_argument("--port", type=int, required=True, help="port to bind; 0 picks a free one")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--latency-ms", type=float, default=0, help="delay added to every completion")
    parser.add_argument(
        "--chunk-delay-ms", type=float, default=0, help="delay before each streamed piece of answer text"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGINT/SIGTERM, then shut down cleanly with exit code 0."""
    args = parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = SimServer(
        host=args.host, port=args.port, latency_ms=args.latency_ms, chunk_delay_ms=args.chunk_delay_ms
    ).start()
    try:
        print(f"sim listening on {server.base_url}", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
