"""Helpers for the end-to-end tests: the SEED fleet and gateway, started for real."""

from __future__ import annotations

import json
from pathlib import Path

from mcgw.cli import run
from mcgw.testing.client import RawClient

ROOT = Path(__file__).resolve().parents[2]
STORE_EXAMPLE = ROOT / "examples" / "store"
HOST = "store.example.com"


async def start_store(log_dir: Path) -> run.Running:
    """The examples/store fleet (4 pods) and the gateway on a free loopback port."""
    return await run.start(
        run.RunOptions(
            paths=(STORE_EXAMPLE,),
            port_map=((80, 0),),
            log_dir=log_dir,
            watch=False,
        ),
        say=lambda _: None,
    )


async def ask(address: tuple[str, int], path: str, host: str = HOST) -> tuple[int, bytes]:
    """One GET with ``Connection: close``; its status and body."""
    c = await RawClient.connect(address)
    try:
        r = await c.request(
            target=path, host=host, headers=(("Connection", "close"),), timeout_s=10
        )
    finally:
        await c.close()
    return r.status, r.body


async def get(
    address: tuple[str, int], path: str, host: str = HOST
) -> tuple[int, dict[str, object]]:
    """One GET with ``Connection: close``; the JSON body ({} if not 200 or not JSON)."""
    status, body = await ask(address, path, host)
    try:
        return status, (json.loads(body) if status == 200 else {})
    except ValueError:
        return status, {}  # not a whereami answer


def read_entries(log_dir: Path) -> list[dict[str, object]]:
    """Every LogEntry written under ``log_dir``."""
    entries = []
    for path in sorted(log_dir.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            entries.append(json.loads(line))
    return entries
