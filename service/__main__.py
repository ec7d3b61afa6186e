"""`python -m service [--host H] [--port P]`: serve the configured bundle with uvicorn.
`python -m service backup DEST` / `restore SRC`: back up or restore the data directory.

Settings come from `COREL_*` environment variables (service/settings.py); the two options
override COREL_HOST and COREL_PORT. A bad setting, a broken bundle, a data directory that
another live server holds or a port already in use exits with status 2 and one line naming
the problem, before the model is loaded.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

import uvicorn
from pydantic import ValidationError
from uvicorn.supervisors import Multiprocess

from corel.bundle import BundleError, load_bundle
from corel.logs import setup_logging
from service.api.http_protocol import with_header_timeout
from service.datadir.backup import backup, restore
from service.datadir.check import StorageError
from service.datadir.lock import DataDirInUseError, DataDirLock
from service.settings import Settings
from service.stores import StoreError, stores_for


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
    commands = parser.add_subparsers(dest="command", metavar="[backup DEST | restore SRC]")
    backup_cmd = commands.add_parser(
        "backup", help="copy COREL_DATA_DIR to DEST, consistently, also while a server runs"
    )
    backup_cmd.add_argument("dest", type=Path, help="a new or empty folder")
    restore_cmd = commands.add_parser(
        "restore", help="replace COREL_DATA_DIR's files by the backup in SRC (server stopped)"
    )
    restore_cmd.add_argument("source", type=Path, help="a folder made by `backup`")
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
    if args.command is not None:
        return _storage_command(args, settings.data_dir)
    try:  # fail before binding the port, with the reason in one line
        bundle = load_bundle(settings.bundle_path)
    except BundleError as exc:
        return _fail(f"cannot serve bundle: {exc}")
    stores = stores_for(settings)
    data_lock = DataDirLock(settings.data_dir) if stores.holds_data_dir else None
    try:
        if data_lock is not None:  # held until the process exits
            data_lock.acquire()
        stores.check()
    except (DataDirInUseError, StorageError, StoreError) as exc:
        return _fail(str(exc))
    except OSError as exc:  # a read-only or foreign data directory
        if data_lock is None:
            raise
        return _fail(f"the data directory {settings.data_dir} is not writable: {exc.strerror}")
    try:  # bound before the model loads: a port in use is one line, not a crash after it
        listener = bind(settings.host, settings.port)
    except OSError as exc:
        return _fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
    if settings.workers > 1:
        return _serve_workers(settings, listener)
    from service.app import create_app

    config = uvicorn.Config(
        create_app(settings=settings, bundle=bundle, data_lock=data_lock),
        http=with_header_timeout(settings.header_timeout_s),
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    uvicorn.Server(config).run(sockets=[listener])
    return 0


def _serve_workers(settings: Settings, listener: socket.socket) -> int:
    """COREL_WORKERS processes on one listening socket (the kernel spreads connections);
    each builds its own app from the same COREL_* settings. Only with the milvus store,
    which holds all shared state (Settings refuses more workers for the embedded one)."""
    os.environ["COREL_HOST"], os.environ["COREL_PORT"] = settings.host, str(settings.port)
    config = uvicorn.Config(
        "service.app:create_app",
        factory=True,
        workers=settings.workers,
        http="service.api.http_protocol:SettingsHeaderTimeoutProtocol",
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    Multiprocess(config, sockets=[listener]).run()
    return 0


def _storage_command(args: argparse.Namespace, data_dir: Path) -> int:
    try:
        if args.command == "backup":
            report = backup(data_dir, args.dest)
            done = f"backed up {report.items} items of {data_dir} into {args.dest}"
        else:
            report = restore(args.source, data_dir)
            done = f"restored {report.items} items into {data_dir} (backup of {report.created})"
    except (StorageError, DataDirInUseError) as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"{exc.filename}: {exc.strerror}")
    print(done)  # noqa: T201 (the command's result)
    return 0


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port, as uvicorn would open it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


if __name__ == "__main__":
    sys.exit(main())
