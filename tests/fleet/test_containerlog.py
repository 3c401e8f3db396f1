"""Pods' lines as k8s_container LogEntries, as GKE's logging agent writes them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcgw import logschema
from mcgw.fleet import containerlog

SOURCE = containerlog.Source(
    project_id="sandbox-mc-gateway",
    cluster="gke-west-1",
    zone="us-west1-a",
    namespace="store",
    pod="store-7d9c-abcde",
    container="whereami",
    labels=(("app", "store"), ("pod-template-hash", "7d9c")),
)


def test_text_and_json_lines_become_k8s_container_entries(tmp_path: Path) -> None:
    log = containerlog.ContainerLog(tmp_path, interval_s=60)
    try:
        log.append(1_701_317_000.25, "plain text", "stdout", SOURCE)
        log.append(1_701_317_000.5, "boom", "stderr", SOURCE)
        special = {
            "message": "served",
            "severity": "warning",
            "logging.googleapis.com/trace": "projects/p/traces/abc",
            "logging.googleapis.com/spanId": "00f067aa0ba902b7",
            "logging.googleapis.com/trace_sampled": True,
            "logging.googleapis.com/labels": {"tier": "web"},
        }
        log.append(1_701_317_001.0, json.dumps(special), "stdout", SOURCE)
    finally:
        log.close()
    (path,) = log.files
    text, err, structured = (json.loads(x) for x in path.open())
    resource = {
        "type": "k8s_container",
        "labels": {
            "project_id": "sandbox-mc-gateway",
            "location": "us-west1-a",
            "cluster_name": "gke-west-1",
            "namespace_name": "store",
            "pod_name": "store-7d9c-abcde",
            "container_name": "whereami",
        },
    }
    pod_labels = {"k8s-pod/app": "store", "k8s-pod/pod-template-hash": "7d9c"}
    assert text["resource"] == err["resource"] == structured["resource"] == resource
    assert text["logName"] == "projects/sandbox-mc-gateway/logs/stdout"
    assert err["logName"] == "projects/sandbox-mc-gateway/logs/stderr"
    assert (text["severity"], err["severity"], structured["severity"]) == (
        "INFO",
        "ERROR",
        "WARNING",
    )
    assert text["textPayload"] == "plain text" and "jsonPayload" not in text
    assert text["timestamp"] == "2023-11-30T04:03:20.250000Z"
    assert text["labels"] == pod_labels
    assert structured["jsonPayload"] == {"message": "served"}
    assert structured["trace"] == "projects/p/traces/abc"
    assert structured["spanId"] == "00f067aa0ba902b7"
    assert structured["traceSampled"] is True
    assert structured["labels"] == {**pod_labels, "tier": "web"}


def _stdout_entry(text: str) -> dict[str, object]:
    """The entry for one stdout line of a pod with placeholder names."""
    return logschema.container_entry(
        timestamp=0.0,
        text=text,
        stream="stdout",
        project_id="p",
        cluster="c",
        zone="z",
        namespace="n",
        pod="p-0",
        container="c",
    )


def test_a_json_line_that_is_not_an_object_stays_text() -> None:
    entry = _stdout_entry("[1, 2]")
    assert entry["textPayload"] == "[1, 2]" and "labels" not in entry


def test_container_log_rotates_by_size_and_keeps_every_line_whole(tmp_path: Path) -> None:
    """Lines appended while the writer thread flushes on its own: every line once, whole,
    across files that stay under the size limit; the count limit removes the oldest."""
    import threading
    import time

    from mcgw import logfiles

    log = containerlog.ContainerLog(
        tmp_path, retention=logfiles.Retention(max_bytes=8 * 1024, keep_files=0), interval_s=0.005
    )
    total = 3000
    try:
        for i in range(total):
            log.append(1_701_317_000.0 + i, f"line {i:05d} " + "x" * 40, "stdout", SOURCE)
            if i % 300 == 0:
                time.sleep(0.01)  # the thread writes meanwhile
        assert threading.active_count() >= 2
    finally:
        log.close()
    files = sorted(tmp_path.glob("containers-*.jsonl"))
    assert files == log.files and len(files) > 10
    seen: list[str] = []
    for path in files:
        data = path.read_bytes()
        assert data.endswith(b"\n") and len(data) <= 8 * 1024
        seen.extend(json.loads(line)["textPayload"].split()[1] for line in data.splitlines())
    assert seen == [f"{i:05d}" for i in range(total)]

    # Retention by count, as for access logs: a second writer keeps the newest three.
    kept = containerlog.ContainerLog(
        tmp_path, retention=logfiles.Retention(max_bytes=8 * 1024, keep_files=3), interval_s=60
    )
    try:
        kept.append(1_701_320_000.0, "after", "stdout", SOURCE)
    finally:
        kept.close()
    left = sorted(tmp_path.glob("containers-*.jsonl"))
    assert len(left) == 3 and left[-1] == kept.path


@pytest.mark.parametrize(
    ("written", "severity"),
    [
        ("warn", "WARNING"),
        ("Warning", "WARNING"),
        ("err", "ERROR"),
        ("fatal", "CRITICAL"),
        ("trace", "DEBUG"),
        ("notice", "NOTICE"),
        ("verbose", "DEFAULT"),  # not a severity Cloud Logging knows
    ],
)
def test_a_json_line_s_severity_is_read_as_the_logging_agent_reads_it(
    written: str, severity: str
) -> None:
    entry = _stdout_entry(json.dumps({"severity": written, "message": "m"}))
    assert entry["severity"] == severity
    assert entry["jsonPayload"] == {"message": "m"}
