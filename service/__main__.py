"""`python -m service [--host H] [--port P]`: serve the configured bundle with uvicorn.

Settings come from `COREL_*` environment variables (service/settings.py); the two options
override COREL_HOST and COREL_PORT. A bad setting, a broken bundle or a data directory that
another live server holds exits with status 2 and one line naming the problem, before the
port is bound.
"""

from __future__ import annotations

import argparse
import sys

import uvicorn
from pydantic import ValidationError

from corel.bundle import BundleError, load_bundle
from corel.logs import setup_logging
from service.data_lock import DataDirInUseError, DataDirLock
from service.settings import Settings


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)  # noqa: T201 (before logging is set up)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", help="interface to bind (default: COREL_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: COREL_PORT, 8000)")
    args = parser.parse_args(argv)
    try:
        settings = Settings()
        overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
        settings = Settings.model_validate({**settings.model_dump(), **overrides})
    except ValidationError as exc:
        problems = "; ".join(
            (f"COREL_{'_'.join(map(str, e['loc'])).upper()}: " if e["loc"] else "") + e["msg"]
            for e in exc.errors()
        )
        return _fail(f"bad setting: {problems}")
    setup_logging(settings.log_level)
    try:  # fail before binding the port, with the reason in one line
        load_bundle(settings.bundle_path)
    except BundleError as exc:
        return _fail(f"cannot serve bundle: {exc}")
    data_lock = DataDirLock(settings.data_dir)
    try:  # held until the process exits
        data_lock.acquire()
    except (DataDirInUseError, OSError) as exc:
        return _fail(str(exc))
    from service.app import create_app

    uvicorn.run(
        create_app(settings=settings, data_lock=data_lock),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
