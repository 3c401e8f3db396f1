"""The gateway flags of the entry-region feature: parsed and checked before anything starts."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from mcgw.cli import main, run

STORE = Path(__file__).resolve().parents[2] / "examples" / "store"


def test_a_bad_trusted_peer_is_bad_input_and_starts_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main.main(["serve", "-f", str(STORE), "--trusted-peer", "proxy.example.com"]) == 2
    assert "--trusted-peer 'proxy.example.com': expected a network" in capsys.readouterr().err


def test_flags_reach_the_run_options() -> None:
    args = main.build_parser().parse_args(
        [
            "up",
            "-f",
            str(STORE),
            "--trusted-peer",
            "10.0.0.0/8",
            "--trusted-peer",
            "192.0.2.7",
            "--entry-region-header",
            "x-mcgw-entry-region",
            "--measure-rtt",
            "--debug-headers",
        ]
    )
    assert run.parse_trusted_peers(args.trusted_peers) == ("10.0.0.0/8", "192.0.2.7")
    assert args.entry_region_header == "x-mcgw-entry-region"
    assert args.measure_rtt and args.debug_headers


def test_the_fleet_declares_trusted_peers_and_the_header_too(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    shutil.copytree(STORE, folder)
    fleet = folder / "fleet.yaml"
    anchor = "    location: asia-northeast1\n"
    fleet.write_text(
        fleet.read_text().replace(
            anchor, anchor + "    trustedPeers: [10.0.0.0/8]\n    entryRegionHeader: x-edge\n"
        )
    )

    async def main_() -> tuple[tuple[str, ...], str]:
        running = await run.start(
            run.RunOptions(
                paths=(folder,),
                port_map=((80, 0),),
                log_dir=tmp_path / "logs",
                access_log=False,
                watch=False,
                with_fleet=False,  # `mcgw serve`: nothing bound but the gateway's port
                trusted_peers=("192.0.2.7",),
            ),
            say=lambda _: None,
        )
        try:
            s = running.gateway.settings
            return s.trusted_peers, s.entry_region_header
        finally:
            await running.close()

    assert asyncio.run(main_()) == (("10.0.0.0/8", "192.0.2.7"), "x-edge")
