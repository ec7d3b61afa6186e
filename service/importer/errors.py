"""The importer's one error: why the import cannot go on, in one line for the user."""

from __future__ import annotations

__all__ = ["ImportFailed"]


class ImportFailed(Exception):
    """The import stops here; the message says what to do about it (one line)."""
