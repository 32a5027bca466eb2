"""Untrusted ad hoc SQL (the dashboard's SQL page, ``observatory sql``): a separate,
locked-down in-memory DuckDB instance over the same views (docs/sql.md, "Safety").
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from observatory.store.core import Store, _create_views
from observatory.store.files import StoreError, write_mark

if TYPE_CHECKING:  # pandas is imported where it is used: a collector run never needs
    import pandas as pd  # it, and importing it costs about 0.4 CPU-seconds at start-up

# ====================================================================== sandbox
# Untrusted ad hoc SQL (the dashboard's SQL page, ``observatory sql``) runs on a
# separate in-memory DuckDB instance with the same views, locked down as described in
# docs/sql.md ("Safety"): file access only under the lake, no extensions, no settings
# changes, time / memory / thread / row limits, one read-only statement per query.

#: Why a statement type is refused (DuckDB's parser names the type).
_REFUSED_TYPES: dict[str, str] = {
    "COPY": "COPY reads or writes files",
    "EXPORT": "EXPORT DATABASE writes files",
    "ATTACH": "ATTACH opens another database",
    "DETACH": "DETACH changes the catalog",
    "LOAD": "INSTALL and LOAD add extensions",
    "SET": "SET, RESET, USE and PRAGMA name=value change settings",
    "VARIABLE_SET": "SET VARIABLE changes session state",
    "PRAGMA": "PRAGMA statements run commands (use the pragma_*() table functions or DESCRIBE)",
    "CALL": "CALL runs procedures (use SELECT * FROM function() instead)",
    "CREATE": "CREATE changes the catalog",
    "INSERT": "INSERT writes data",
    "UPDATE": "UPDATE writes data",
    "DELETE": "DELETE writes data",
    "DROP": "DROP changes the catalog",
    "ALTER": "ALTER changes the catalog",
    "MULTI": "this statement expands into several (e.g. PIVOT without an IN list)",
}
#: Functions that execute SQL text given as data, or escape the time and memory limits.
_DENIED_FUNCTIONS = frozenset(
    {
        "query",
        "query_table",
        "json_execute_serialized_sql",
        "json_deserialize_sql",
        "destroy_external_resource",
    }
)
_LENGTH_CAPPED = frozenset({"repeat", "lpad", "rpad"})
_WIDTH_CAPPED = frozenset({"format", "printf"})
_LOCAL_ONLY_SETTINGS = frozenset({"enable_progress_bar"})
_MAX_STRING_LENGTH = 10_000_000


def _function_calls(node: Any) -> Iterator[tuple[str, list[Any]]]:
    """Every ``(function name, argument expressions)`` in a ``json_serialize_sql`` tree.

    Table functions (``FROM f(...)``) are found too: they are function nodes inside a
    ``TABLE_FUNCTION`` reference.
    """
    if isinstance(node, dict):
        name = node.get("function_name")
        if isinstance(name, str):
            args = [
                a.get("expression", a) for a in node.get("arguments") or [] if isinstance(a, dict)
            ]
            args += list(node.get("children") or [])
            yield name.lower(), args
        for value in node.values():
            yield from _function_calls(value)
    elif isinstance(node, list):
        for item in node:
            yield from _function_calls(item)


def _constant_text(node: Any) -> str | None:
    """The text of a string constant node, else None."""
    if isinstance(node, dict) and node.get("class") == "CONSTANT":
        literal = node.get("literal")
        if isinstance(literal, dict) and literal.get("kind") == "STRING":
            return str(literal.get("text", ""))
    return None


def _constant_number(node: Any) -> float | None:
    """The value of a numeric constant node (also under a cast), else None."""
    if not isinstance(node, dict):
        return None
    if node.get("class") == "CAST":
        return _constant_number(node.get("child"))
    literal = node.get("literal")
    if (
        node.get("class") == "CONSTANT"
        and isinstance(literal, dict)
        and literal.get("kind") in ("INTEGER", "NUMERIC", "DECIMAL", "FLOAT", "DOUBLE")
    ):
        try:
            return float(literal.get("text", ""))
        except ValueError:
            return None
    return None


_READ_ONLY_KINDS = "SELECT, WITH, VALUES, FROM, TABLE, DESCRIBE, SHOW, SUMMARIZE, PIVOT, EXPLAIN"
_LOCKED = "the configuration has been locked"


def _sql_literal(value: object) -> str:
    """A trusted Python value as a DuckDB literal (for ``SET``, which takes no parameters)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_sql_literal(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def _default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


#: Attempts of one sandboxed query when writes overlap it (:meth:`SafeSQL.run`).
WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of the untrusted-SQL sandbox (:class:`SafeSQL`).

    Attributes:
        max_rows: most rows one query returns; a longer result is cut there and
            flagged ``truncated``.
        timeout_s: wall-clock limit of one query, fetching included.
        memory_limit: DuckDB ``memory_limit`` of the sandbox instance, shared by its
            concurrent queries; nothing spills to disk.
        threads: DuckDB worker threads of the sandbox instance.
        max_query_chars: longest query text accepted.
        max_concurrent: queries that run at once; others wait up to ``timeout_s``.
        write_wait_s: how long a query waits for a writer that holds the store's
            writer lock (a collector run) before it runs anyway, per attempt.
    """

    max_rows: int = 10_000
    timeout_s: float = 30.0
    memory_limit: str = "2GB"
    threads: int = field(default_factory=_default_threads)
    max_query_chars: int = 100_000
    max_concurrent: int = 4
    write_wait_s: float = 10.0


SQLErrorKind = Literal["refused", "timeout", "memory", "busy", "failed"]


class SQLError(StoreError):
    """An untrusted query was refused or failed.

    Attributes:
        kind: ``refused`` (not allowed: statement type, length, a file outside the
            lake, a settings change), ``timeout``, ``memory``, ``busy`` (no free
            slot) or ``failed`` (DuckDB rejected it: syntax, unknown column, ...).
    The message says why and includes DuckDB's own message, with the ``LINE n:``
    excerpt and caret that mark the position, when DuckDB produced one.
    """

    def __init__(self, kind: SQLErrorKind, message: str):
        super().__init__(message)
        self.kind: SQLErrorKind = kind


@dataclass(frozen=True)
class SQLResult:
    """The rows of one sandboxed query.

    Attributes:
        table: the rows (at most ``max_rows``), with DuckDB's Arrow types.
        types: DuckDB's type name of each column (``TIMESTAMP``, ``DOUBLE``, ...).
        truncated: the query returned more than ``max_rows`` rows; ``table`` holds
            the first ``max_rows``.
        max_rows: the row cap this query ran with.
        elapsed_s: wall-clock seconds, checks and fetching included.
        statement: ``SELECT`` or ``EXPLAIN``.
        store_changed: a writer wrote to the store while the query ran, on every
            attempt: rows of the partitions it rewrote may mix the two versions of a
            file (the views read files by glob, so no per-file check is possible);
            run the query again when the collector is idle.
    """

    table: pa.Table
    types: list[str]
    truncated: bool
    max_rows: int
    elapsed_s: float
    statement: str
    store_changed: bool = False

    @property
    def columns(self) -> list[str]:
        """The column names, in order."""
        return list(self.table.column_names)

    @property
    def num_rows(self) -> int:
        """Rows returned (after the cap)."""
        return int(self.table.num_rows)

    def to_pandas(self) -> pd.DataFrame:
        """The rows as a DataFrame (duplicate column names are kept)."""
        return self.table.to_pandas()

    def to_parquet(self, where: str | os.PathLike[str] | BinaryIO) -> None:
        """Write the rows as Parquet.

        Column names made unique (``a``, ``a_2``); types Parquet cannot hold
        (``INTERVAL``) written as their text.
        """
        table = self.table
        seen: dict[str, int] = {}
        names = []
        for name in table.column_names:
            seen[name] = seen.get(name, 0) + 1
            names.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
        table = table.rename_columns(names)
        for i, f in enumerate(table.schema):
            if pa.types.is_interval(f.type):
                text = pa.array(
                    [None if v is None else str(v) for v in table.column(i).to_pylist()]
                )
                table = table.set_column(i, pa.field(f.name, pa.string()), text)
        pq.write_table(table, where)


#: DuckDB's "Did you mean" guess when it names a system table, not a store view.
_SYSTEM_GUESS = re.compile(
    r'\s*Did you mean "(?:pg_|sqlite_|duckdb_|information_schema)[^"]*"\??', re.IGNORECASE
)


class SafeSQL:
    """Runs untrusted SQL on a locked-down, in-memory DuckDB instance over the lake.

    The instance has the views of ``sql/views.sql`` and, set before
    ``lock_configuration=true`` (so no query can undo them):
    ``enable_external_access=false`` with ``allowed_directories`` = the lake folder
    and ``allowed_paths`` = the run log (every file reader, ``glob``, ``COPY``,
    ``ATTACH``, ``INSTALL`` and Python replacement scans are refused elsewhere),
    extension auto-install/auto-load off, ``max_execution_time``, ``memory_limit``,
    ``threads``, no temporary directory (nothing spills to disk).  Before running,
    DuckDB's own parser must find exactly one statement, of type ``SELECT`` (which
    covers WITH, VALUES, FROM-first, TABLE, DESCRIBE, SHOW, SUMMARIZE) or an
    ``EXPLAIN`` of one.  A timer interrupts a query that outlives
    ``timeout_s`` (DuckDB checks ``max_execution_time`` only at some points).
    Rows are streamed and cut at ``max_rows``.  Each query runs on its own cursor:
    a refused or failed query leaves the instance serving others.

    Thread-safe.  Build it with :meth:`Store.sandbox`.
    """

    def __init__(self, store: Store, limits: SandboxLimits | None = None):
        self.limits = limits or SandboxLimits()
        # Absolute paths: allowed_directories compares paths as DuckDB resolves them.
        self._store = Store(store.root.resolve())
        self._slots = threading.BoundedSemaphore(self.limits.max_concurrent)
        self._lock = threading.Lock()
        try:
            self._con: duckdb.DuckDBPyConnection | None = self._build()
        except duckdb.Error as exc:
            raise SQLError("failed", f"cannot open the SQL sandbox on {store.root}: {exc}") from exc

    @property
    def lake(self) -> Path:
        """The only folder the sandbox reads."""
        return self._store.lake

    def _build(self) -> duckdb.DuckDBPyConnection:
        lim = self.limits
        con = duckdb.connect(":memory:")
        try:
            con.execute("SET GLOBAL TimeZone='UTC'")
            _create_views(con, self._store._view_sources())
            runs = self._store.root / "runs.jsonl"
            settings: list[tuple[str, object]] = [
                ("threads", int(lim.threads)),
                ("memory_limit", lim.memory_limit),
                ("temp_directory", ""),
                ("max_temp_directory_size", "0B"),
                ("max_execution_time", max(1, int(lim.timeout_s * 1000))),
                ("autoinstall_known_extensions", False),
                ("autoload_known_extensions", False),
                ("allow_community_extensions", False),
                ("python_enable_replacements", False),
                ("allow_persistent_secrets", False),
                ("enable_progress_bar", False),
                ("allowed_directories", [self._store.lake.as_posix().rstrip("/") + "/"]),
                ("allowed_paths", [runs.as_posix()] if runs.exists() else []),
                ("enable_external_access", False),
                ("lock_configuration", True),  # last: nothing above can be changed now
            ]
            for name, value in settings:
                # GLOBAL where DuckDB allows it: a plain SET is local to this connection
                # and would not reach the cursors queries run on (max_execution_time).
                scope = "" if name in _LOCAL_ONLY_SETTINGS else "GLOBAL "
                con.execute(f"SET {scope}{name} = {_sql_literal(value)}")
        except BaseException:
            con.close()
            raise
        return con

    def close(self) -> None:
        """Close the instance (queries after this raise :class:`SQLError`)."""
        with self._lock:
            if self._con is not None:
                self._con.close()
            self._con = None

    def _cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                raise SQLError("failed", "the SQL sandbox is closed")
            return self._con.cursor()

    # ------------------------------------------------------------ checks
    def check(self, sql: str) -> str:
        """Raise :class:`SQLError` (``refused``/``failed``) unless ``sql`` may run.

        Returns:
            the statement type that would run (``SELECT`` or ``EXPLAIN``).
        """
        cur = self._cursor()
        try:
            return self._check(sql, cur)[1]
        finally:
            cur.close()

    def _check(self, sql: str, cur: duckdb.DuckDBPyConnection) -> tuple[Any, str]:
        if not isinstance(sql, str):
            raise SQLError("refused", "refused: the query must be text")
        if len(sql) > self.limits.max_query_chars:
            raise SQLError(
                "refused",
                f"refused: the query is {len(sql):,} characters long; "
                f"the limit is {self.limits.max_query_chars:,}",
            )
        statements = self._parse(sql, cur)
        if not statements:
            raise SQLError("refused", "refused: the query is empty")
        if len(statements) > 1:
            kinds = ", ".join(self._type_name(s) for s in statements)
            raise SQLError(
                "refused",
                f"refused: {len(statements)} statements ({kinds}); run one query at a time",
            )
        statement = statements[0]
        kind = self._type_name(statement)
        if kind == "SELECT":
            self._check_functions(sql, cur)
            return statement, kind
        if kind == "EXPLAIN":
            explained = self._explained(sql)
            if explained is None:
                raise SQLError(
                    "refused",
                    "refused: EXPLAIN ANALYZE runs the query; use EXPLAIN, or run the query",
                )
            inner = self._parse(explained, cur)
            if len(inner) == 1 and self._type_name(inner[0]) == "SELECT":
                self._check_functions(explained, cur)
                return statement, kind
            raise SQLError(
                "refused",
                f"refused: EXPLAIN is allowed only of one read-only query ({_READ_ONLY_KINDS})",
            )
        reason = _REFUSED_TYPES.get(
            kind,
            "this statement is not a read-only query"
            if kind == "UNKNOWN"
            else f"{kind} statements are not read-only queries",
        )
        raise SQLError(
            "refused",
            f"refused: {reason}. Only read-only queries run here ({_READ_ONLY_KINDS}).",
        )

    @staticmethod
    def _type_name(statement: Any) -> str:
        try:
            return str(getattr(statement.type, "name", statement.type)).upper()
        except ValueError:  # a statement type the Python client cannot name (UPDATE EXTENSIONS)
            return "UNKNOWN"

    @staticmethod
    def _parse(sql: str, cur: duckdb.DuckDBPyConnection) -> list[Any]:
        try:
            return list(cur.extract_statements(sql))
        except duckdb.ParserException as exc:
            raise SQLError("failed", f"query failed: {exc}") from None
        except (duckdb.Error, ValueError) as exc:
            # e.g. a statement type the Python client cannot name (UPDATE EXTENSIONS)
            raise SQLError("refused", f"refused: not a read-only query ({exc})") from None

    @staticmethod
    def _explained(sql: str) -> str | None:
        """The text after ``EXPLAIN``; None for ``EXPLAIN ANALYZE`` (refused: it executes).

        ``duckdb.tokenize`` gives offsets in UTF-8 bytes, so the text is cut as bytes:
        cutting the ``str`` by those offsets let non-ASCII characters in a comment shift
        the cut and smuggle a COPY past this check.
        """
        raw = sql.encode("utf-8")
        starts = [
            start for start, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment
        ]
        words = []
        for start in starts[:2]:
            word = b""
            for byte in raw[start : start + 16]:
                if not (chr(byte).isalpha() or byte == ord("_")):
                    break
                word += bytes([byte])
            words.append(word.decode("ascii", "replace").upper())
        if not words or words[0] != "EXPLAIN":
            return ""
        if len(words) > 1 and words[1] in ("ANALYZE", "ANALYSE"):
            return None
        return raw[starts[1] :].decode("utf-8") if len(starts) > 1 else ""

    def _check_functions(self, sql: str, cur: duckdb.DuckDBPyConnection) -> None:
        """Refuse functions that run SQL text or free memory outside the limits.

        The query is parsed to DuckDB's own JSON syntax tree (``json_serialize_sql``)
        and every called function is checked against :data:`_DENIED_FUNCTIONS`;
        ``repeat``/``lpad``/``rpad`` with a constant length above a cap are refused too
        (their memory is not counted by ``memory_limit``).
        """
        try:
            rows = cur.execute("SELECT json_serialize_sql($q)", {"q": sql}).fetchall()
            row = rows[0] if rows else None
        except duckdb.Error as exc:
            raise SQLError("failed", f"query failed: {exc}") from None
        tree = json.loads(row[0]) if row and row[0] else {}
        if tree.get("error"):
            raise SQLError("failed", f"query failed: {tree.get('error_message', tree)}")
        for name, args in _function_calls(tree):
            if name in _DENIED_FUNCTIONS:
                raise SQLError("refused", f"refused: {name}() is not allowed here")
            if name in _LENGTH_CAPPED and len(args) >= 2:
                # The length must be a constant within the cap: these functions build
                # the whole string at once, outside memory_limit and the interrupt.
                value = _constant_number(args[1])
                if value is None or value > _MAX_STRING_LENGTH:
                    shown = "a computed length" if value is None else f"a length of {value:,.0f}"
                    raise SQLError(
                        "refused",
                        f"refused: {name}() with {shown}; the length must be a number "
                        f"up to {_MAX_STRING_LENGTH:,}",
                    )
            if name in _WIDTH_CAPPED and args:
                text = _constant_text(args[0])
                if text is None or re.search(r"\d{8,}", text):
                    raise SQLError(
                        "refused",
                        f"refused: {name}() needs a constant format without widths over 7 digits",
                    )

    # ------------------------------------------------------------ running
    def run(self, sql: str, max_rows: int | None = None) -> SQLResult:
        """Check and run one untrusted query.

        Args:
            sql: one read-only statement (a trailing ``;`` and comments are fine).
            max_rows: row cap for this query (default ``limits.max_rows``).

        Raises:
            SQLError: refused, stopped (time, memory), busy or failed; the message
                says which and why.
        """
        cap = self.limits.max_rows if max_rows is None else int(max_rows)
        if cap < 0:
            raise SQLError("refused", f"refused: max_rows must be 0 or more, got {cap}")
        began = time.perf_counter()
        if not self._slots.acquire(timeout=self.limits.timeout_s):
            raise SQLError(
                "busy",
                f"busy: {self.limits.max_concurrent} queries are already running; try again",
            )
        try:
            return self._run_quiet(sql, cap, began)
        finally:
            self._slots.release()

    def _run_quiet(self, sql: str, cap: int, began: float) -> SQLResult:
        """:meth:`_run` when no writer overlaps it: a writer holding the lock is waited
        for (up to ``limits.write_wait_s``), and a query that a write overlapped (the
        write mark changed or was odd) runs again, :data:`WRITE_ATTEMPTS` times in
        all; the last result is flagged ``store_changed`` if every attempt overlapped.
        A DuckDB error on an attempt a write overlapped is retried the same way."""
        root = self._store.root
        result: SQLResult | None = None
        for attempt in range(WRITE_ATTEMPTS):
            before = self._quiet_mark(root)
            try:
                result = self._run(sql, cap, began)
            except SQLError:
                after = write_mark(root)
                if attempt + 1 < WRITE_ATTEMPTS and (before[1] or after != before):
                    continue
                raise
            after = write_mark(root)
            if not before[1] and after == before:
                return result
        assert result is not None
        return dataclasses.replace(
            result, store_changed=True, elapsed_s=time.perf_counter() - began
        )

    def _quiet_mark(self, root: Path) -> tuple[int, bool]:
        """The write mark once no writer holds the lock, or after waiting
        ``limits.write_wait_s`` for it."""
        deadline = time.monotonic() + self.limits.write_wait_s
        mark = write_mark(root)
        while mark[1] and time.monotonic() < deadline:
            time.sleep(0.1)
            mark = write_mark(root)
        return mark

    def _run(self, sql: str, cap: int, began: float) -> SQLResult:
        cur = self._cursor()
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            cur.interrupt()

        timer = threading.Timer(self.limits.timeout_s, stop)
        timer.daemon = True
        try:
            statement, kind = self._check(sql, cur)
            timer.start()
            rel = cur.sql(statement)
            types = [str(t) for t in rel.types]
            reader = rel.to_arrow_reader(max(2048, min(cap + 1, 65_536)))
            batches: list[pa.RecordBatch] = []
            rows = 0
            try:
                for batch in reader:
                    batches.append(batch)
                    rows += batch.num_rows
                    if rows > cap:
                        break
            finally:
                reader.close()
            table = pa.Table.from_batches(batches, schema=reader.schema)
            truncated = table.num_rows > cap
            if truncated:
                table = table.slice(0, cap)
            return SQLResult(
                table=table,
                types=types,
                truncated=truncated,
                max_rows=cap,
                elapsed_s=time.perf_counter() - began,
                statement=kind,
            )
        except SQLError:
            raise
        except duckdb.Error as exc:
            raise self._failure(exc, fired.is_set()) from None
        except Exception as exc:  # the service must survive anything a query provokes
            raise SQLError("failed", f"query failed: {type(exc).__name__}: {exc}") from None
        finally:
            timer.cancel()
            cur.close()

    def _failure(self, exc: duckdb.Error, timed_out: bool) -> SQLError:
        text = str(exc)
        if timed_out or isinstance(exc, duckdb.InterruptException):
            return SQLError(
                "timeout",
                f"stopped: the query ran longer than the {self.limits.timeout_s:g} s limit.\n"
                f"DuckDB: {text}",
            )
        if isinstance(exc, duckdb.OutOfMemoryException):
            return SQLError(
                "memory",
                "stopped: the query needs more memory than the sandbox's "
                f"{self.limits.memory_limit} limit; aggregate more or add a LIMIT.\n"
                f"DuckDB: {text}",
            )
        if isinstance(exc, duckdb.PermissionException):
            return SQLError(
                "refused",
                f"refused: the SQL sandbox reads only the store's data folder "
                f"{self.lake}/ (use the views).\nDuckDB: {text}",
            )
        if _LOCKED in text:
            return SQLError("refused", f"refused: settings are locked in the SQL sandbox.\n{text}")
        if isinstance(exc, duckdb.CatalogException) and "does not exist" in text:
            return SQLError("failed", f"query failed: {self._unknown_name(text)}")
        return SQLError("failed", f"query failed: {text}")

    def _unknown_name(self, text: str) -> str:
        """A catalogue error without DuckDB's guess when it names one of DuckDB's own
        system tables (``pg_sequences``, ``sqlite_schema``, ...), which the sandbox user
        never meant, plus the store's views to choose from."""
        text = _SYSTEM_GUESS.sub("", text).rstrip()
        cur = self._cursor()
        try:
            views = [
                r[0]
                for r in cur.execute(
                    "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
                ).fetchall()
            ]
        except duckdb.Error:
            return text
        finally:
            cur.close()
        return f"{text}\nThe store's views: {', '.join(views)}." if views else text

    # ------------------------------------------------------------ catalogue
    def columns(self) -> pd.DataFrame:
        """Every view's columns and DuckDB types: ``view``, ``column``, ``type``, ``position``."""
        cur = self._cursor()
        try:
            return cur.execute(
                "SELECT table_name AS view, column_name AS column, data_type AS type, "
                "column_index AS position FROM duckdb_columns() "
                "WHERE NOT internal AND table_name IN "
                "(SELECT view_name FROM duckdb_views() WHERE NOT internal) "
                "ORDER BY view, position"
            ).df()
        finally:
            cur.close()
