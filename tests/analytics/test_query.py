"""mcgw.analytics: BigQuery SQL over Cloud-Logging-shaped JSONL, against golden CSVs.

Goldens: ``testdata/<case>.jsonl`` (logs, from analytics_logs.py) + ``<case>.sql`` →
``<case>.out.csv``. ``pytest --update-goldens`` rewrites the CSVs from the current code.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import analytics_logs as logdata
import pytest

from mcgw import logschema
from mcgw.analytics import errors, ingest, query

TESTDATA = Path(__file__).parent / "testdata"
CASES = sorted(p.stem for p in TESTDATA.glob("*.sql"))
SEED_SQL = (TESTDATA / "seed_location.sql").read_text()


def _logs(tmp_path: Path, *cases: str) -> Path:
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)
    for case in cases:
        shutil.copy(TESTDATA / f"{case}.jsonl", log_dir / f"{case}.jsonl")
    return log_dir


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tmp_path: Path, update_goldens: bool) -> None:
    sql = (TESTDATA / f"{case}.sql").read_text()
    result = query.run(sql, _logs(tmp_path, case), cache=False)
    got = query.format(result, "csv")
    golden = TESTDATA / f"{case}.out.csv"
    if update_goldens:
        golden.write_text(got)
    want = golden.read_text()
    if "ORDER BY" not in sql.upper():
        # Without ORDER BY the row order is the engine's choice, as in BigQuery.
        got, want = _sorted_rows(got), _sorted_rows(want)
    assert got == want


def _sorted_rows(text: str) -> str:
    header, *rows = text.splitlines()
    return "\n".join([header, *sorted(rows)])


def test_seed_query_verbatim_counts_per_location(tmp_path: Path) -> None:
    result = query.run(SEED_SQL, _logs(tmp_path, "seed_location"), cache=False)
    assert result.columns == ("cluster_location", "cnt")
    # 41 west lines in the inclusive window (both ends), 7 east; lines a millisecond
    # outside the window and access-log lines are not counted.
    assert dict(result.rows) == {"us-west1-a": 41, "us-east1-b": 7}


def test_seed_query_time_zone_is_applied(tmp_path: Path) -> None:
    # The same wall-clock times read as UTC select nothing: the logs are at 04:0x UTC.
    sql = SEED_SQL.replace('"Asia/Tokyo"', '"UTC"')
    assert query.run(sql, _logs(tmp_path, "seed_location"), cache=False).rows == ()


def test_shift_to_rebases_todays_run_onto_the_seed_window(tmp_path: Path) -> None:
    log_dir = tmp_path / "today"
    log_dir.mkdir()
    start = datetime(2025, 6, 1, 9, 30, 12, 345678, tzinfo=UTC).timestamp()
    lines = [logdata.container(start + i, "gke-west-1", "us-west1-a", i) for i in range(150)]
    lines += [logdata.container(start + 5 + i, "gke-east-1", "us-east1-b", i) for i in range(9)]
    lines.append(logdata.container(start + 181, "gke-east-1", "us-east1-b", 0))  # after 13:06
    (log_dir / "containers-1.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))

    assert query.run(SEED_SQL, log_dir, cache=False).rows == ()  # never shifted by default
    shifted = query.run(
        SEED_SQL,
        log_dir,
        shift_to=datetime(2023, 11, 30, 13, 3, tzinfo=ZoneInfo("Asia/Tokyo")),
        cache=False,
    )
    assert dict(shifted.rows) == {"us-west1-a": 150, "us-east1-b": 9}
    earliest = query.run(
        "SELECT MIN(timestamp) AS t FROM `x._AllLogs`",
        log_dir,
        shift_to=datetime(2023, 11, 30, 4, 3),  # naive = UTC
        cache=False,
    )
    assert earliest.rows == ((datetime(2023, 11, 30, 4, 3, tzinfo=UTC),),)


def test_bad_sql_reports_position(tmp_path: Path) -> None:
    with pytest.raises(errors.AnalyticsError) as info:
        query.run("SELECT\n  COUNT(*)\nFROM WHERE x", _logs(tmp_path, "json_fields"))
    assert info.value.line == 3
    assert info.value.column is not None
    assert "line 3" in str(info.value)


def test_unknown_column_is_an_analytics_error(tmp_path: Path) -> None:
    with pytest.raises(errors.AnalyticsError, match="no_such_column"):
        query.run(
            "SELECT no_such_column FROM `p.global._Default._AllLogs`",
            _logs(tmp_path, "json_fields"),
        )


def test_a_misspelt_column_is_placed_in_the_sql_typed_with_the_engine_s_hint(
    tmp_path: Path,
) -> None:
    typed = "SELECT\n  JSON_VALUE(json_payload.cluster) AS c,\n  sevrity\nFROM `x._AllLogs`"
    with pytest.raises(errors.AnalyticsError) as info:
        query.run(typed, _logs(tmp_path, "access_by_cluster"), cache=False)
    # Line 3, column 3 of what was typed, not of the translation (a CASE over internals).
    assert (info.value.line, info.value.column, info.value.sql) == (3, 3, typed)
    assert 'Candidate bindings: "severity"' in str(info.value)
    assert "__lb" not in str(info.value)


def test_unknown_table_is_an_analytics_error(tmp_path: Path) -> None:
    with pytest.raises(errors.AnalyticsError, match="other_table"):
        query.run("SELECT 1 FROM other_table", _logs(tmp_path, "json_fields"), cache=False)
    with pytest.raises(errors.AnalyticsError, match="ends in _AllLogs"):
        query.run("SELECT 1 FROM `p.global._Default._AllLog`", _logs(tmp_path, "json_fields"))


def test_missing_or_empty_log_dir(tmp_path: Path) -> None:
    with pytest.raises(errors.AnalyticsError, match="does not exist"):
        query.run(SEED_SQL, tmp_path / "nope")
    with pytest.raises(errors.AnalyticsError, match=r"no \*\.jsonl"):
        query.run(SEED_SQL, tmp_path)


def test_logs_the_os_cannot_read_are_an_analytics_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OSError while reading the lines (here: no ``splice``, and no temporary
    directory for the copy instead; both faked, as this machine has them) is reported
    as the logs that could not be read, not as a traceback."""
    log_dir = _logs(tmp_path, "json_fields")
    monkeypatch.delattr(os, "splice")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "no-such-tmp"))
    with pytest.raises(errors.AnalyticsError, match=f"cannot read logs under {log_dir}"):
        query.run(SEED_SQL, log_dir, cache=False)


def test_duckdb_dialect(tmp_path: Path) -> None:
    result = query.run(
        "SELECT count(*) AS n FROM _AllLogs WHERE resource.type = 'http_load_balancer'",
        _logs(tmp_path, "access_by_cluster"),
        dialect="duckdb",
        cache=False,
    )
    assert result.rows == ((40,),)
    with pytest.raises(errors.AnalyticsError, match="dialect"):
        query.run("SELECT 1", tmp_path, dialect="mysql")


def test_cache_follows_appends_and_removals(tmp_path: Path) -> None:
    log_dir = _logs(tmp_path, "access_by_cluster", "json_fields")
    count = "SELECT COUNT(*) FROM `p.global._Default._AllLogs`"
    assert query.run(count, log_dir).rows == ((43,),)
    assert (log_dir / ingest.CACHE_NAME).exists()
    with (log_dir / "json_fields.jsonl").open("a") as f:
        f.write(json.dumps(logdata.container(logdata.WINDOW_START, "c", "z", 1)) + "\n")
    assert query.run(count, log_dir).rows == ((44,),)
    (log_dir / "access_by_cluster.jsonl").unlink()
    assert query.run(count, log_dir).rows == ((4,),)
    sub = log_dir / "more"
    sub.mkdir()
    shutil.copy(TESTDATA / "seed_location.jsonl", sub / "x.jsonl")
    assert query.run(count, log_dir).rows == ((63,),)


def test_partial_last_line_is_skipped(tmp_path: Path) -> None:
    log_dir = _logs(tmp_path, "json_fields")
    with (log_dir / "json_fields.jsonl").open("a") as f:
        f.write('{"insertId": "half-writ')
    assert query.run("SELECT COUNT(*) FROM `a._AllLogs`", log_dir, cache=False).rows == ((3,),)


def test_named_queries(tmp_path: Path) -> None:
    assert {"distribution", "latency", "errors"} <= set(query.names())
    log_dir = _logs(tmp_path, "access_by_cluster", "seed_location")
    dist = query.run(query.named("distribution"), log_dir, cache=False)
    assert dist.columns == ("cluster", "zone", "requests", "percent")
    assert dist.rows == (
        ("gke-west-1", "us-west1-a", 35, 77.78),
        ("gke-east-1", "us-east1-b", 10, 22.22),
    )
    errs = query.run(query.named("errors"), log_dir, cache=False)
    assert errs.rows == (("store/store", 45, 2, 4.44),)
    lat = query.run(query.named("latency"), log_dir, cache=False)
    assert lat.columns[:2] == ("route", "requests")
    ((route, requests, p50, p90, p95, p99, max_ms),) = lat.rows
    assert (route, requests, max_ms) == ("store/public-store-route/2", 45, 30.0)
    assert 1.0 <= p50 <= p90 <= p95 <= p99 <= max_ms
    with pytest.raises(errors.AnalyticsError, match="distribution"):
        query.named("nope")


def test_named_failover_lists_spillover_and_failover_per_minute(tmp_path: Path) -> None:
    log_dir = _logs(tmp_path, "routing_events")
    result = query.run(query.named("failover"), log_dir, cache=False)
    assert result.columns == (
        "minute",
        "reason",
        "backend",
        "cluster",
        "zone",
        "requests",
        "first_seen",
        "last_seen",
    )
    t0 = datetime(2023, 11, 30, 4, 3, tzinfo=UTC)
    assert [(r[0], r[1], r[3], r[4], r[5], r[6], r[7]) for r in result.rows] == [
        (
            t0,
            "spillover",
            "gke-east-1",
            "us-east1-b",
            5,
            t0.replace(second=30),
            t0.replace(second=34),
        ),
        (
            t0.replace(minute=4),
            "failover",
            "gke-east-1",
            "us-east1-b",
            8,
            t0.replace(minute=4, second=10),
            t0.replace(minute=4, second=17),
        ),
    ]
    # The same logs through the other named queries: every request counted once.
    dist = query.run(query.named("distribution"), log_dir, cache=False)
    assert dist.rows == (
        ("gke-west-1", "us-west1-a", 24, 60.0),
        ("gke-east-1", "us-east1-b", 16, 40.0),
    )


def test_every_named_query_runs_and_describes_itself(tmp_path: Path) -> None:
    log_dir = _logs(tmp_path, "access_by_cluster", "routing_events", "seed_location")
    assert set(query.names()) == {"distribution", "errors", "failover", "latency"}
    for name in query.names():
        assert query.describe(name).endswith(".")
        assert query.run(query.named(name), log_dir, cache=False).rows


def test_formats() -> None:
    result = query.QueryResult(
        columns=("cluster_location", "cnt", "at", "labels"),
        rows=(
            ("us-west1-a", 15369, datetime(2023, 11, 30, 4, 3, tzinfo=UTC), {"a": 1}),
            ("us-east1-b", 583, None, None),
        ),
    )
    assert json.loads(query.format(result, "json")) == [
        {
            "cluster_location": "us-west1-a",
            "cnt": 15369,
            "at": "2023-11-30T04:03:00Z",
            "labels": {"a": 1},
        },
        {"cluster_location": "us-east1-b", "cnt": 583, "at": None, "labels": None},
    ]
    assert list(csv.reader(io.StringIO(query.format(result, "csv")))) == [
        ["cluster_location", "cnt", "at", "labels"],
        ["us-west1-a", "15369", "2023-11-30T04:03:00Z", '{"a":1}'],
        ["us-east1-b", "583", "", ""],
    ]
    assert query.format(result, "table") == (
        "cluster_location    cnt  at                    labels\n"
        "----------------  -----  --------------------  -------\n"
        'us-west1-a        15369  2023-11-30T04:03:00Z  {"a":1}\n'
        "us-east1-b          583\n"
        "(2 rows)\n"
    )
    with pytest.raises(errors.AnalyticsError, match="format"):
        query.format(result, "xml")


def test_typed_payload_fields_answer_as_the_json_does(tmp_path: Path) -> None:
    """JSON_VALUE(json_payload.<access field>) reads the typed copy where an entry has
    one, and the JSON otherwise (a pod's JSON line may use the same key)."""
    log_dir = _logs(tmp_path, "access_by_cluster", "json_fields")
    line = logschema.container_entry(
        timestamp=logdata.WINDOW_START,
        text='{"cluster": "from-a-pod", "zone": 7}',
        stream="stdout",
        project_id="p",
        cluster="c",
        zone="z",
        namespace="n",
        pod="p-0",
        container="c",
    )
    with (log_dir / "json_fields.jsonl").open("a") as f:
        f.write(json.dumps(line) + "\n")
    fast = query.run(
        "SELECT JSON_VALUE(json_payload.cluster) AS c, JSON_VALUE(json_payload.zone) AS z, "
        "COUNT(*) AS n FROM `p.global._Default._AllLogs` GROUP BY c, z ORDER BY c, z",
        log_dir,
        cache=False,
    )
    assert '"_AllLogs_typed"' in fast.sql and "__lb" in fast.sql
    slow = query.run(
        "SELECT json_extract_string(json_payload, '$.cluster') AS c, "
        "json_extract_string(json_payload, '$.zone') AS z, COUNT(*) AS n "
        "FROM _AllLogs GROUP BY c, z ORDER BY c, z",
        log_dir,
        dialect="duckdb",
        cache=False,
    )
    assert "__lb" not in slow.sql
    assert set(fast.rows) == set(slow.rows)  # (NULLs sort first in BigQuery, last in DuckDB)
    assert ("from-a-pod", "7", 1) in fast.rows
    # SELECT * would show the typed column: such statements read the plain view.
    star = query.run(
        "SELECT *, JSON_VALUE(json_payload.cluster) AS c FROM `p._AllLogs` LIMIT 1",
        log_dir,
        cache=False,
    )
    assert "__lb" not in star.columns and "__lb" not in star.sql


def test_cache_reads_only_appended_lines_and_waits_for_torn_ones(tmp_path: Path) -> None:
    log_dir = _logs(tmp_path, "access_by_cluster")
    path = log_dir / "access_by_cluster.jsonl"
    count = "SELECT COUNT(*), COUNT(DISTINCT insert_id) FROM `p._AllLogs`"
    assert query.run(count, log_dir).rows == ((40, 40),)
    inode = path.stat().st_ino
    # A line half written: not counted, and not counted twice once finished.
    line = json.dumps(logdata.access(logdata.WINDOW_START + 99, "c", "z-a", 200, 1)) + "\n"
    with path.open("a") as f:
        f.write(line[:50])
    assert query.run(count, log_dir).rows == ((40, 40),)
    with path.open("a") as f:
        f.write(line[50:])
        f.write(json.dumps(logdata.access(logdata.WINDOW_START + 98, "c", "z-a", 200, 2)) + "\n")
    assert query.run(count, log_dir).rows == ((42, 42),)
    assert path.stat().st_ino == inode  # it was the same file, read from where it ended
    # The same name for new content (rotation by rename, an editor): read again in full.
    shutil.copy(TESTDATA / "json_fields.jsonl", log_dir / "replacement.jsonl")
    os.replace(log_dir / "replacement.jsonl", path)
    assert query.run(count, log_dir).rows == ((3, 3),)
    # Truncated and rewritten shorter.
    path.write_text(path.read_text().splitlines(keepends=True)[0])
    assert query.run(count, log_dir).rows == ((1, 1),)


def test_translations_are_remembered_per_statement(tmp_path: Path) -> None:
    log_dir = _logs(tmp_path, "access_by_cluster")
    first = query.run(query.named("distribution"), log_dir)
    memo = json.loads((log_dir / ingest.TRANSLATIONS_NAME).read_text())
    assert list(memo.values()) == [first.sql]
    query.run("SELECT 7 AS n", log_dir)  # BigQuery dialect
    memo = json.loads((log_dir / ingest.TRANSLATIONS_NAME).read_text())
    # A remembered translation is what runs (here, a doctored one shows it is used).
    (log_dir / ingest.TRANSLATIONS_NAME).write_text(
        json.dumps({k: "SELECT 42 AS answer" for k in memo})
    )
    assert query.run("SELECT 7 AS n", log_dir).rows == ((42,),)
    assert query.run(query.named("distribution"), log_dir).rows == ((42,),)
    # Another statement, or another dialect, is translated afresh.
    assert query.run("SELECT COUNT(*) AS n FROM `p._AllLogs`", log_dir).rows == ((40,),)
    assert query.run("SELECT 7 AS n", log_dir, dialect="duckdb").rows == ((7,),)
    ingest.clear_cache(log_dir)
    assert not (log_dir / ingest.TRANSLATIONS_NAME).exists()


def test_format_timestamp_uses_its_time_zone(tmp_path: Path) -> None:
    # The seed logs are at 04:0x UTC, 13:0x in Tokyo; without a zone BigQuery formats in UTC.
    sql = (
        'SELECT FORMAT_TIMESTAMP("%H:%M", MIN(timestamp), "Asia/Tokyo") AS tokyo, '
        'FORMAT_TIMESTAMP("%H:%M", MIN(timestamp)) AS utc, '
        'FORMAT_TIMESTAMP("%F %H:%M", MIN(timestamp), "America/Los_Angeles") AS la '
        "FROM `p.global._Default._AllLogs` WHERE resource.type = 'k8s_container'"
    )
    result = query.run(sql, _logs(tmp_path, "seed_location"), cache=False)
    earliest = query.run(
        "SELECT MIN(timestamp) FROM `x._AllLogs` WHERE resource.type = 'k8s_container'",
        _logs(tmp_path, "seed_location"),
        cache=False,
    ).rows[0][0]
    assert result.rows == (
        (
            earliest.astimezone(ZoneInfo("Asia/Tokyo")).strftime("%H:%M"),
            earliest.astimezone(UTC).strftime("%H:%M"),
            earliest.astimezone(ZoneInfo("America/Los_Angeles")).strftime("%Y-%m-%d %H:%M"),
        ),
    )
    assert result.rows[0][0] != result.rows[0][1]


def test_json_values_are_json_once_in_every_format(tmp_path: Path) -> None:
    # resource.labels.zone is JSON (a JSON string), labels a JSON object, and resource
    # a RECORD whose labels are JSON: none may come out as JSON quoted in JSON.
    sql = (
        "SELECT resource.labels.zone AS loc, labels, resource "
        "FROM `p.global._Default._AllLogs` "
        "WHERE resource.type = 'http_load_balancer' ORDER BY timestamp LIMIT 1"
    )
    result = query.run(sql, _logs(tmp_path, "access_by_cluster"), cache=False)
    [row] = json.loads(query.format(result, "json"))
    assert row["loc"] == "global"
    assert row["labels"]["gateway"] == "store/external-http"
    assert row["resource"]["type"] == "http_load_balancer"
    assert row["resource"]["labels"]["zone"] == "global"
    [header, cells] = list(csv.reader(io.StringIO(query.format(result, "csv"))))
    assert header == ["loc", "labels", "resource"]
    assert cells[0] == '"global"'  # a JSON string, shown as JSON, as Log Analytics does
    assert json.loads(cells[1]) == row["labels"]
    assert json.loads(cells[2]) == row["resource"]
    table = query.format(result, "table").splitlines()[2]
    assert '"zone":"global"' in table and '\\"' not in table


def test_columns_are_named_as_bigquery_names_them(tmp_path: Path) -> None:
    sql = (
        "SELECT JSON_VALUE(json_payload.cluster), COUNT(*), json_payload.nope, "
        "resource.labels.zone, severity, COUNT(*) AS n "
        "FROM `p.global._Default._AllLogs` WHERE resource.type = 'http_load_balancer' "
        "GROUP BY 1, 3, 4, 5 ORDER BY 2 DESC"
    )
    result = query.run(sql, _logs(tmp_path, "access_by_cluster"), cache=False)
    assert result.columns == ("f0_", "f1_", "nope", "zone", "severity", "n")
    assert result.rows[0][0] in {"gke-west-1", "gke-east-1"}
    union = query.run(
        "SELECT 1, 'a' AS x UNION ALL SELECT 2, 'b'", _logs(tmp_path, "access_by_cluster")
    )
    assert union.columns == ("f0_", "x")


def test_trace_columns_read_the_trace_context(tmp_path: Path) -> None:
    # Lines as the gateway writes them for requests that carried a trace context.
    source = Path(__file__).parents[1] / "dataplane" / "testdata" / "access_lines.jsonl"
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "access-1.jsonl").write_bytes(source.read_bytes())
    result = query.run(
        "SELECT insert_id, span_id, trace_sampled, trace FROM `x._AllLogs` "
        "WHERE trace IS NOT NULL ORDER BY insert_id",
        log_dir,
        cache=False,
    )
    assert [row[:3] for row in result.rows[:3]] == [
        ("0000000000000002", "00f067aa0ba902b7", True),
        ("0000000000000003", "00f067aa0ba902b7", False),
        ("0000000000000004", "00000000000000ff", True),
    ]
    assert all(row[3].endswith("/traces/4bf92f3577b34da6a3ce929d0e0e4736") for row in result.rows)
