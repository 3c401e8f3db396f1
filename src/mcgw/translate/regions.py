"""Where Google Cloud regions are, and how far apart: the locality pass.

The global load balancer ranks regions by how close they are to where a request enters.
Without measurements, mcgw estimates the round trip from great-circle distance: light
in fibre covers about 200 km per millisecond, real paths are about 1.4 times longer
than the great circle, and every round trip pays a small fixed cost in switches. The
Fleet's ``spec.latencies`` replaces the estimate for the pairs it lists.

Coordinates are those of each region's city (approximate, public knowledge); they only
need to be good enough to rank regions.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Iterable

from mcgw.config import fleet as fleet_config
from mcgw.ir import table

REGION_COORDINATES: dict[str, tuple[float, float]] = {
    "africa-south1": (-26.20, 28.05),  # Johannesburg
    "asia-east1": (24.05, 120.52),  # Changhua County, Taiwan
    "asia-east2": (22.32, 114.17),  # Hong Kong
    "asia-northeast1": (35.68, 139.69),  # Tokyo
    "asia-northeast2": (34.69, 135.50),  # Osaka
    "asia-northeast3": (37.57, 126.98),  # Seoul
    "asia-south1": (19.08, 72.88),  # Mumbai
    "asia-south2": (28.61, 77.21),  # Delhi
    "asia-southeast1": (1.35, 103.70),  # Jurong West, Singapore
    "asia-southeast2": (-6.21, 106.85),  # Jakarta
    "australia-southeast1": (-33.87, 151.21),  # Sydney
    "australia-southeast2": (-37.81, 144.96),  # Melbourne
    "europe-central2": (52.23, 21.01),  # Warsaw
    "europe-north1": (60.57, 27.20),  # Hamina
    "europe-southwest1": (40.42, -3.70),  # Madrid
    "europe-west1": (50.45, 3.82),  # St. Ghislain
    "europe-west2": (51.51, -0.13),  # London
    "europe-west3": (50.11, 8.68),  # Frankfurt
    "europe-west4": (53.44, 6.83),  # Eemshaven
    "europe-west6": (47.38, 8.54),  # Zurich
    "europe-west8": (45.46, 9.19),  # Milan
    "europe-west9": (48.86, 2.35),  # Paris
    "europe-west10": (52.52, 13.40),  # Berlin
    "europe-west12": (45.07, 7.69),  # Turin
    "me-central1": (25.29, 51.53),  # Doha
    "me-central2": (26.43, 50.10),  # Dammam
    "me-west1": (32.09, 34.78),  # Tel Aviv
    "northamerica-northeast1": (45.50, -73.57),  # Montréal
    "northamerica-northeast2": (43.65, -79.38),  # Toronto
    "northamerica-south1": (20.59, -100.39),  # Querétaro
    "southamerica-east1": (-23.55, -46.63),  # São Paulo
    "southamerica-west1": (-33.45, -70.67),  # Santiago
    "us-central1": (41.26, -95.86),  # Council Bluffs, Iowa
    "us-east1": (33.20, -80.01),  # Moncks Corner, South Carolina
    "us-east4": (39.04, -77.49),  # Ashburn, Virginia
    "us-east5": (39.96, -83.00),  # Columbus, Ohio
    "us-south1": (32.78, -96.80),  # Dallas
    "us-west1": (45.59, -121.18),  # The Dalles, Oregon
    "us-west2": (34.05, -118.24),  # Los Angeles
    "us-west3": (40.76, -111.89),  # Salt Lake City
    "us-west4": (36.17, -115.14),  # Las Vegas
}
"""(latitude, longitude) in degrees of every region mcgw knows."""

EARTH_RADIUS_KM = 6371.0
FIBRE_KM_PER_MS = 200.0
ROUTE_FACTOR = 1.4
"""Real network paths are longer than the great circle."""
BASE_RTT_MS = 1.0
"""What a round trip costs inside one region (switching, the last mile of fibre)."""


def region_of(location: str) -> str:
    """``us-west1-a`` → ``us-west1``; a region is returned unchanged."""
    if location in REGION_COORDINATES:
        return location
    head, _, tail = location.rpartition("-")
    if head in REGION_COORDINATES and len(tail) == 1:
        return head
    return location


def distance_km(a: str, b: str) -> float:
    """Great-circle distance between two known regions (haversine)."""
    lat1, lon1 = (math.radians(x) for x in REGION_COORDINATES[a])
    lat2, lon2 = (math.radians(x) for x in REGION_COORDINATES[b])
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def estimated_rtt_ms(a: str, b: str) -> float | None:
    """Estimated round trip between two regions, rounded to 0.1 ms; None if unknown."""
    if a not in REGION_COORDINATES or b not in REGION_COORDINATES:
        return None
    one_way = distance_km(a, b) * ROUTE_FACTOR / FIBRE_KM_PER_MS
    return round(BASE_RTT_MS + 2 * one_way, 1)


def locality(
    spec: fleet_config.FleetSpec, regions: Iterable[str]
) -> tuple[table.Locality, tuple[str, ...]]:
    """Rank ``regions`` by round trip from the gateway's location, and from every
    other region a request may enter at: each cluster's region and each region of
    the Fleet's ``gateway.clientRegions``.

    Returns:
        The IR locality (closest first) and warnings for regions that could be ranked
        neither from the Fleet's latencies nor from the built-in table (from the
        gateway's location only: other entry regions rank them last alike).
    """
    regions = sorted(set(regions))
    entry = region_of(spec.gateway.location)
    default, warnings = ranking(spec, entry, regions)
    entries = {region_of(c.region) for c in spec.gateway.client_regions} | set(regions)
    entries.discard(entry)
    # Most specific network first; equal prefixes in address order, for determinism.
    networks = sorted(
        (ipaddress.ip_network(c.cidr, strict=False), region_of(c.region))
        for c in spec.gateway.client_regions
    )
    networks.sort(key=lambda n: -n[0].prefixlen)
    return (
        table.Locality(
            entry_region=entry,
            region_rtt_ms=default,
            other_entries=tuple(
                table.EntryRanking(name, ranking(spec, name, regions)[0])
                for name in sorted(entries)
            ),
            client_regions=tuple(table.ClientRegion(str(net), region) for net, region in networks),
        ),
        warnings,
    )


def ranking(
    spec: fleet_config.FleetSpec, entry: str, regions: Iterable[str]
) -> tuple[tuple[tuple[str, float], ...], tuple[str, ...]]:
    """(region, round trip ms) from ``entry``, closest first, and warnings for the
    regions that have no known round trip from there (left out: they rank last)."""
    overrides: dict[str, float] = {}
    for latency in spec.latencies:
        # Round trips are symmetric: a pair may be written either way round.
        if latency.from_region == entry:
            overrides[latency.to_region] = latency.rtt_ms
        elif latency.to_region == entry:
            overrides.setdefault(latency.from_region, latency.rtt_ms)
    ranked: list[tuple[float, str]] = []
    warnings: list[str] = []
    for region in sorted(set(regions)):
        rtt = overrides.get(region)
        if rtt is None:
            rtt = estimated_rtt_ms(entry, region)
        if rtt is None:
            warnings.append(
                f"region {region!r}: no latency from gateway location {entry!r} "
                "(not a known cloud region and not in the Fleet's latencies); "
                "it ranks after every known region"
            )
            continue
        ranked.append((float(rtt), region))
    ranked.sort()
    return tuple((r, t) for t, r in ranked), tuple(warnings)


UNLIMITED_RATE = 1e8
"""maxRatePerEndpoint × capacityScaler at or above this (GKE's default) never limits."""


def spillover_warnings(
    spec: fleet_config.FleetSpec, backends: Iterable[table.Backend]
) -> tuple[str, ...]:
    """Warn for each Service the Fleet expects to spill over that cannot.

    Spill-over to the next region happens when the closest one is at capacity; with
    GKE's default maxRatePerEndpoint (1e8) a region never is, so an expectation
    declared in ``spec.expectSpillover`` would silently never be met.
    """
    by_service: dict[str, list[table.Backend]] = {}
    for backend in backends:
        by_service.setdefault(f"{backend.namespace}/{backend.service}", []).append(backend)
    warnings: list[str] = []
    for name in spec.expect_spillover:
        found = by_service.get(name)
        if not found:
            warnings.append(
                f"expectSpillover {name!r}: no route forwards to a Service or ServiceImport "
                "of that name; fix the name or remove it from the Fleet's expectSpillover"
            )
            continue
        for backend in found:
            per_endpoint = backend.max_rate_per_endpoint * backend.capacity_scaler
            if not 0.0 < per_endpoint < UNLIMITED_RATE:
                warnings.append(
                    f"CapacityUnset: expectSpillover {name!r} but {backend.name} has no "
                    "capacity (maxRatePerEndpoint unset, GKE's default is unlimited), so "
                    "its closest region never fills and nothing spills over; attach a "
                    "GCPBackendPolicy with spec.default.maxRatePerEndpoint"
                )
    return tuple(warnings)
