"""Resources from files and folders, reloaded when they change."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import watchfiles

from mcgw.config import load
from mcgw.provider import base


class FileProvider:
    """Loads ``paths`` now and again after every change below them.

    Changes are debounced by watchfiles, so an editor's write-rename-write sequence
    yields one reload, not three.
    """

    def __init__(self, paths: Sequence[Path], *, watch: bool = True) -> None:
        self._paths = tuple(paths)
        self._watch = watch

    def load(self) -> base.Event:
        try:
            return base.Snapshot(load.load(self._paths))
        except load.ConfigError as exc:
            return base.Rejected(exc)

    async def events(self) -> AsyncIterator[base.Event]:
        yield self.load()
        if not self._watch:
            return
        async for _changes in watchfiles.awatch(*self._paths, debounce=300, recursive=True):
            yield self.load()
