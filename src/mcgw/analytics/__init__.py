"""SQL over mcgw's logs, as Log Analytics runs it over Cloud Logging.

The gateway's access log and the fleet's container logs are JSONL files of Cloud Logging
``LogEntry`` objects (:mod:`mcgw.logschema`). This package lets the queries an SRE writes
in Log Analytics — BigQuery SQL over ``project.global._Default._AllLogs`` — run unchanged
on a laptop:

* :mod:`~mcgw.analytics.ingest` parses the files with DuckDB into a table with Log
  Analytics' column names and types (``resource.labels`` and ``json_payload`` are JSON,
  ``http_request`` a record), cached per log directory and refreshed per changed file;
* :mod:`~mcgw.analytics.indexer` keeps that cache current while logs are written (a
  child of ``mcgw up``/``serve``), taking turns with queries through
  :mod:`~mcgw.analytics.cachelock`;
* :mod:`~mcgw.analytics.bigquery` translates BigQuery SQL with sqlglot and fixes up
  what Log Analytics means by it (``…_AllLogs`` tables, dotted access into JSON columns,
  ``JSON_VALUE``);
* :mod:`~mcgw.analytics.query` runs a statement, formats the result (table, JSON rows,
  CSV) and serves the canned queries in ``queries/*.sql``.

Glossary: *replay shift* (``shift_to``) moves every timestamp by one delta so that a
query written for another day (SEED.md's 2023-11-30 13:03 JST window) selects a run
made today. It is opt-in and never applied by default.
"""
