"""``mcgw explain``: pure, over the examples' manifests and the local fleet's planned pods."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcgw.cli import explain, main

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
STORE = [EXAMPLES / "store"]
CAPACITY = [EXAMPLES / "capacity"]


def run(paths: list[Path], url: str, *flags: str) -> str:
    args = main.build_parser().parse_args(
        ["explain", *(a for p in paths for a in ("-f", str(p))), url, *flags]
    )
    return explain.explain(args.paths, explain.parse_request(args))


def line(text: str, start: str) -> str:
    found = [x for x in text.splitlines() if x.startswith(start)]
    assert len(found) == 1, text
    return found[0]


def test_route_precedence_and_closest_region_from_tokyo() -> None:
    out = run(STORE, "http://store.example.com/")
    assert line(out, "Entry region:") == "Entry region: asia-northeast1 (the gateway's location)"
    assert line(out, "Route:") == "Route: store/public-store-route/rule/2/match/0"
    assert "not matched (checked first, by precedence): path PathPrefix /west" in out
    assert line(out, "Regions from").endswith("us-west1 (111.4 ms), us-east1 (159.4 ms)")
    assert line(out, "Pick:").startswith("Pick: gke-west-1 us-west1-a ")
    assert ": closest (" in line(out, "Pick:")


def test_east_route_and_entry_region_change_the_ranking() -> None:
    out = run(STORE, "http://store.example.com/east/x")
    assert line(out, "Route:") == "Route: store/public-store-route/rule/1/match/0"
    assert line(out, "Pick:").startswith("Pick: gke-east-1 ")
    out = run(STORE, "http://store.example.com/", "--entry-region", "us-east1")
    assert line(out, "Entry region:") == "Entry region: us-east1 (given)"
    assert line(out, "Regions from").endswith("us-east1 (1 ms), us-west1 (53.5 ms)")
    assert line(out, "Pick:").startswith("Pick: gke-east-1 us-east1-b ")


def test_hypothetical_health_fails_over() -> None:
    out = run(STORE, "http://store.example.com/", "--down", "gke-west-1")
    assert "gke-west-1 us-west1-a: 0/2 ready endpoints healthy" in out
    assert line(out, "Pick:").startswith("Pick: gke-east-1 ")
    assert ": failover (" in line(out, "Pick:")
    out = run(STORE, "http://store.example.com/", "--down", "us-west1", "--down", "us-east1")
    assert line(out, "Pick:") == "Pick: none: no ready, healthy endpoint: the gateway answers 503"


def test_rate_shows_the_capacity_waterfall() -> None:
    # examples/capacity: 2 endpoints × 10 rps per region, the gateway in us-west1.
    out = run(CAPACITY, "http://store.example.com/", "--rate", "10")
    assert line(out, "Split") == "Split of 10 requests in 1 s: gke-west-1 10 (closest)"
    out = run(CAPACITY, "http://store.example.com/", "--rate", "30")
    assert line(out, "Split") == (
        "Split of 30 requests in 1 s: gke-east-1 10 (spillover), gke-west-1 20 (closest)"
    )


def test_no_route_and_bad_input() -> None:
    out = run(STORE, "http://other.example.com/")
    assert line(out, "Route:") == "Route: none matched: the gateway answers 404"
    with pytest.raises(ValueError, match="no Gateway listens on port 81"):
        run(STORE, "http://store.example.com:81/")
    assert main.main(["explain", "-f", str(STORE[0]), "http://store.example.com/", "-H", "x"]) == 2
