"""`python -m parlay_standins [--host 127.0.0.1] [--port 8090]`: every provider stand-in on one
port, each family under its prefix (/meta, /telegram, /twilio, /wechat, /line, /viber, /stripe)."""

from __future__ import annotations

import argparse
import os

import uvicorn

from parlay_standins.app import create_app
from parlay_standins.state import ALL_FAMILIES

DEFAULT_PORT = 8090


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="parlay_standins", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("PARLAY_STANDINS_HOST", "127.0.0.1"))
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PARLAY_STANDINS_PORT", DEFAULT_PORT))
    )
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    url = f"http://{args.host}:{args.port}"
    print(
        f"parlay stand-ins on {url}: " + ", ".join(f"{url}/{f}" for f in ALL_FAMILIES), flush=True
    )
    uvicorn.run(
        create_app(),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    main()
