"""Errors raised by mcgw.analytics."""

from __future__ import annotations

from mcgw import errors


class AnalyticsError(errors.McgwError):
    """A query that cannot run: bad SQL, an unknown table, or no logs to read.

    ``line`` and ``column`` (1-based) point into ``sql`` when the parser or the engine
    said where the problem is; ``sql`` is the text they refer to, which for BigQuery
    input may be the DuckDB translation rather than what the user typed. ``hint``, shown
    on a line of its own after the position, says what would fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        sql: str = "",
        line: int | None = None,
        column: int | None = None,
        hint: str = "",
    ) -> None:
        where = (
            f" (line {line}, column {column})" if line is not None and column is not None else ""
        )
        super().__init__(message + where + (f"\n{hint}" if hint else ""))
        self.sql = sql
        self.line = line
        self.column = column


def no_log_dir(log_dir: object) -> AnalyticsError:
    """The log directory asked for is not there, with where the logs usually are."""
    return AnalyticsError(
        f"log directory {log_dir} does not exist",
        hint="Give --log-dir the directory the gateway writes: `mcgw up` and `mcgw serve` "
        "write to var/logs (below where they ran) unless given --log-dir.",
    )
