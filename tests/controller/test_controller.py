"""The controller: last good table on bad input, on failed publishes, and in order."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mcgw import errors
from mcgw.config import load
from mcgw.controller import runner
from mcgw.provider import base
from mcgw.testing import manifests
from mcgw.translate import translator


def _snapshot(tmp_path: Path, port: int) -> base.Snapshot:
    folder = tmp_path / f"config-{port}"
    folder.mkdir()
    (folder / "app.yaml").write_text(manifests.gateway_to_endpoints(backend_port=port))
    return base.Snapshot(load.load([folder]))


class Publisher:
    """Records what was published; fails the calls it is told to fail."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.published: list[str] = []

    async def __call__(self, result: translator.Result) -> None:
        await asyncio.sleep(0)  # a real publish awaits (binding sockets)
        if self.fail:
            self.fail -= 1
            raise errors.McgwError("listener x: cannot bind 127.0.0.1:80: in use")
        self.published.append(result.table.version)


def test_a_failed_publish_keeps_the_last_table_and_the_next_change_applies(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        publish = Publisher()
        controller = runner.Controller(publish=publish)
        await controller.handle(_snapshot(tmp_path, 1001), strict=True)
        first = controller.result
        assert first is not None

        publish.fail = 1
        await controller.handle(_snapshot(tmp_path, 1002))  # must not raise
        assert controller.result is first  # still in force
        assert "cannot bind" in controller.rejected[-1]

        await controller.handle(_snapshot(tmp_path, 1003))
        assert controller.result is not None and controller.result is not first
        assert publish.published == [first.table.version, controller.result.table.version]

    asyncio.run(main())


def test_strict_publish_failure_raises(tmp_path: Path) -> None:
    async def main() -> None:
        controller = runner.Controller(publish=Publisher(fail=1))
        with pytest.raises(errors.McgwError):
            await controller.handle(_snapshot(tmp_path, 1001), strict=True)

    asyncio.run(main())


def test_unchanged_and_rejected_events_publish_nothing(tmp_path: Path) -> None:
    async def main() -> None:
        publish = Publisher()
        controller = runner.Controller(publish=publish)
        snap = _snapshot(tmp_path, 1001)
        await controller.handle(snap)
        await controller.handle(base.Snapshot(snap.loaded))
        bad = tmp_path / "bad"
        bad.mkdir()
        (bad / "x.yaml").write_text("kind: [")
        with pytest.raises(load.ConfigError) as caught:
            load.load([bad])
        await controller.handle(base.Rejected(caught.value))
        assert len(publish.published) == 1
        assert "x.yaml" in controller.rejected[-1]

    asyncio.run(main())


def test_concurrent_reconciles_publish_in_order(tmp_path: Path) -> None:
    async def main() -> None:
        publish = Publisher()
        controller = runner.Controller(publish=publish)
        snaps = [_snapshot(tmp_path, port) for port in (1001, 1002, 1003)]
        await asyncio.gather(*(controller.handle(s) for s in snaps))
        # The last table handled is the one in force, and it was published last.
        assert controller.result is not None
        assert publish.published[-1] == controller.result.table.version
        assert len(publish.published) == len(set(publish.published))

    asyncio.run(main())
