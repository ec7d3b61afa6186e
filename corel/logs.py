"""The one logging set-up of every entry point (the server, corel-train, corel-sweep)."""

from __future__ import annotations

import logging

__all__ = ["setup_logging"]

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str | int = logging.INFO) -> None:
    logging.basicConfig(level=level.upper() if isinstance(level, str) else level, format=FORMAT)
