"""`mcgw logs query|queries|tail` as a user runs them (the real command, in a subprocess)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from cli_kit import ROOT, mcgw

TESTDATA = ROOT / "tests" / "analytics" / "testdata"


def logs(tmp_path: Path, *cases: str) -> Path:
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    for case in cases:
        shutil.copy(TESTDATA / f"{case}.jsonl", log_dir / f"access-{case}.jsonl")
    return log_dir


def test_queries_lists_the_named_queries() -> None:
    done = mcgw("logs", "queries")
    assert done.returncode == 0, done.stderr
    names = [line.split()[0] for line in done.stdout.splitlines()]
    assert names == ["distribution", "errors", "failover", "latency"]
    shown = mcgw("logs", "queries", "--show", "failover")
    assert "json_payload.reason" in shown.stdout


def test_named_query_in_each_output_format(tmp_path: Path) -> None:
    log_dir = str(logs(tmp_path, "routing_events"))
    table = mcgw("logs", "query", "--named", "distribution", "--log-dir", log_dir)
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0].split() == ["cluster", "zone", "requests", "percent"]
    assert table.stdout.rstrip().endswith("(2 rows)")
    as_csv = mcgw("logs", "query", "--named", "distribution", "--log-dir", log_dir, "-o", "csv")
    assert list(csv.reader(io.StringIO(as_csv.stdout))) == [
        ["cluster", "zone", "requests", "percent"],
        ["gke-west-1", "us-west1-a", "24", "60.0"],
        ["gke-east-1", "us-east1-b", "16", "40.0"],
    ]
    as_json = mcgw("logs", "query", "--named", "failover", "--log-dir", log_dir, "-o", "json")
    rows = json.loads(as_json.stdout)
    assert [(r["minute"], r["reason"], r["requests"]) for r in rows] == [
        ("2023-11-30T04:03:00Z", "spillover", 5),
        ("2023-11-30T04:04:00Z", "failover", 8),
    ]
    neither = mcgw("logs", "query", "--log-dir", log_dir)
    assert neither.returncode == 2 and "--named" in neither.stderr
    unknown = mcgw("logs", "query", "--named", "nope", "--log-dir", log_dir)
    assert unknown.returncode == 2 and "distribution" in unknown.stderr


def test_tail_filters_and_follows(tmp_path: Path) -> None:
    log_dir = logs(tmp_path, "routing_events")
    done = mcgw("logs", "tail", "--log-dir", str(log_dir), "-n", "3", "--reason", "failover")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3 and all(" failover " in line for line in lines)
    assert lines[-1].startswith("2023-11-30T04:04:17.000000Z 200 GET ")
    none = mcgw("logs", "tail", "--log-dir", str(log_dir), "--status", "5xx")
    assert (none.returncode, none.stdout) == (0, "")
    typo = mcgw("logs", "tail", "--log-dir", str(log_dir), "--reason", "failver")
    assert typo.returncode == 2 and "unknown routing reason 'failver'" in typo.stderr
    negative = mcgw("logs", "tail", "--log-dir", str(log_dir), "-n", "-5")
    assert negative.returncode == 2 and "expected a count >= 0" in negative.stderr

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mcgw",
            "logs",
            "tail",
            "-f",
            "-n",
            "0",
            "--status",
            "5xx",
            "--log-dir",
            str(log_dir),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)  # started and read the existing files
        entry = json.loads((log_dir / "access-routing_events.jsonl").read_text().splitlines()[0])
        entry["httpRequest"]["status"] = 503
        (log_dir / "access-new.jsonl").write_text(json.dumps(entry) + "\n")
        time.sleep(1.5)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert out.splitlines() == [line for line in out.splitlines() if " 503 GET " in line]
    assert len(out.splitlines()) == 1


def test_a_reader_that_goes_away_ends_tail_quietly(tmp_path: Path) -> None:
    # `mcgw logs tail | head -1`: far more than a pipe holds, and the reader leaves.
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    lines = (TESTDATA / "routing_events.jsonl").read_text().splitlines(keepends=True)
    (log_dir / "access-many.jsonl").write_text("".join(lines * 100))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcgw", "logs", "tail", "-n", "4000", "--log-dir", str(log_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b"2023-11-30T")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=30) == 141  # as a shell reports a command ended by SIGPIPE
    assert err == ""


def test_bad_options_name_the_option_and_the_fix(tmp_path: Path) -> None:
    log_dir = str(logs(tmp_path, "routing_events"))
    shift = mcgw(
        "logs", "query", "--named", "distribution", "--log-dir", log_dir, "--shift-to", "x"
    )
    assert shift.returncode == 2 and "argument --shift-to: expected an ISO 8601" in shift.stderr
    dialect = mcgw("logs", "query", "SELECT 1", "--log-dir", log_dir, "--dialect", "mysql")
    assert dialect.returncode == 2 and "choose from 'bigquery', 'duckdb'" in dialect.stderr
    missing = mcgw("logs", "query", "SELECT 1", "--log-dir", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "does not exist" in missing.stderr and "Give --log-dir" in missing.stderr
    # index takes the directory as query and tail do, as well as positionally.
    indexed = mcgw("logs", "index", "--log-dir", log_dir)
    assert indexed.returncode == 0 and "40 log entries indexed" in indexed.stderr
    twice = mcgw("logs", "index", log_dir, "--log-dir", log_dir)
    assert twice.returncode == 2 and "once" in twice.stderr
