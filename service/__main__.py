"""`python -m service [--host H] [--port P]`: serve the configured bundle with uvicorn."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from service.bundle import BundleError, load_bundle
from service.settings import Settings


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__)
    parser.add_argument("--host", default=settings.host, help="default: COREL_HOST")
    parser.add_argument("--port", type=int, default=settings.port, help="default: COREL_PORT")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:  # fail before binding the port, with the reason in one line
        load_bundle(settings.bundle_path)
    except BundleError as exc:
        print(f"error: cannot serve bundle: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    from service.app import create_app

    settings = settings.model_copy(update={"host": args.host, "port": args.port})
    uvicorn.run(create_app(settings=settings), host=args.host, port=args.port,
                log_level="info", timeout_graceful_shutdown=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
