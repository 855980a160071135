"""Core statements run straight on the DB-API cursor, for the persistence fast path.

A trade batch writes a handful of rows with statements whose shape never changes
(``persistence.store._trade_batch``). Through ``Session.execute`` each one paid
SQLAlchemy's per-statement machinery: the ORM session's execution hooks, the compiled
cache lookup, an execution context, parameter processing and a result object. Measured in
one quiet process on SQLite: a Core ``execute`` of a small statement costs 33 us, the
same statement on the raw cursor 3 us, and that machinery was about half of a 3-write
batch's time (py-spy). With the batch's key lookups (``RawLookup``) and its inserts and
updates here, a 3-write batch (intent, fill, position) takes 0.63-0.78 ms instead of
1.24-1.39 ms in one process on SQLite (5 x 800 batches, two runs each).

``RawStatement`` compiles a Core statement once per dialect with SQLAlchemy itself and
keeps its SQL text, its parameter order and each parameter's bind processor (the column
types' own conversions: ``Money`` as exact text on SQLite, UTC datetimes, JSON, enums),
so the values that reach the driver are exactly those a Core ``execute`` sends. It runs
on the connection of the session's transaction, so it commits and rolls back with the
rest of the batch. A DB-API error is raised as SQLAlchemy's ``DBAPIError`` subclass, as
a Core ``execute`` would raise it, and a connection the dialect says is gone is
invalidated first, so the batch's retry logic sees exactly what it saw before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql import ClauseElement


class RawStatement:
    """One Core statement, compiled per dialect, run on the raw DB-API cursor."""

    def __init__(self, statement: ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, tuple[str, list[str], dict[str, Any], bool]] = {}

    def _for(self, dialect: Dialect) -> tuple[str, list[str], dict[str, Any], bool]:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            if compiled.positional:
                names = list(compiled.positiontup or ())
            else:
                names = list(compiled.binds)
            processors = {}
            for name in names:
                processor = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                if processor is not None:
                    processors[name] = processor
            found = (compiled.string, names, processors, bool(compiled.positional))
            self._compiled[dialect.name] = found
        return found

    def _parameters(self, dialect: Dialect, values: Mapping[str, Any]) -> Any:
        _, names, processors, positional = self._for(dialect)
        processed = {}
        for name in names:
            value = values[name]
            processor = processors.get(name)
            processed[name] = value if processor is None else processor(value)
        if positional:
            return tuple(processed[name] for name in names)
        return processed

    def execute_many(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Run the statement once per row (``executemany``)."""
        if not rows:
            return
        dialect = connection.dialect
        sql = self._for(dialect)[0]
        params = [self._parameters(dialect, row) for row in rows]
        with _cursor(connection, sql, params) as cursor:
            if len(params) == 1:
                cursor.execute(sql, params[0])
            else:
                cursor.executemany(sql, params)

    def insert_returning(self, connection: Connection, rows: Iterable[Mapping[str, Any]]) -> list[Any]:
        """Run an ``INSERT ... RETURNING <one column>`` once per row; the returned values,
        in the rows' order.

        On PostgreSQL several rows go in one pipelined ``executemany`` that keeps each
        row's result (psycopg's ``returning=True``): a round trip per row would cost a
        large batch more than SQLAlchemy's multi-row insert did. SQLite runs in process,
        where a statement per row is cheap."""
        dialect = connection.dialect
        sql = self._for(dialect)[0]
        params = [self._parameters(dialect, row) for row in rows]
        if not params:
            return []
        with _cursor(connection, sql, params) as cursor:
            if len(params) > 1 and dialect.driver == "psycopg":
                cursor.executemany(sql, params, returning=True)
                out = [cursor.fetchone()[0]]
                while cursor.nextset():
                    out.append(cursor.fetchone()[0])
                return out
            out = []
            for one in params:
                cursor.execute(sql, one)
                out.append(cursor.fetchone()[0])
            return out


class _cursor:  # noqa: N801 - used as a context manager, like ``open``
    """A DB-API cursor of ``connection``'s transaction that translates driver errors the
    way a Core ``execute`` does."""

    def __init__(self, connection: Connection, sql: str, params: Any) -> None:
        self.connection = connection
        self.sql = sql
        self.params = params
        self.cursor: Any = None

    def __enter__(self) -> Any:
        self.cursor = self.connection.connection.cursor()
        return self.cursor

    def __exit__(self, kind: Any, error: BaseException | None, traceback: Any) -> bool:
        cursor, self.cursor = self.cursor, None
        try:
            cursor.close()
        except Exception:  # noqa: BLE001 - the statement's own error matters more
            pass
        dialect = self.connection.dialect
        if error is None or not isinstance(error, dialect.loaded_dbapi.Error):
            return False
        gone = dialect.is_disconnect(error, self.connection.connection.dbapi_connection, cursor)
        if gone:
            self.connection.invalidate(error)
        raise DBAPIError.instance(self.sql, self.params, error, dialect.loaded_dbapi.Error,
                                  hide_parameters=self.connection.engine.hide_parameters,
                                  connection_invalidated=gone, dialect=dialect) from error


_INSERTS: dict[tuple[str, tuple[str, ...], bool], RawStatement] = {}


def raw_insert(table: Any, columns: Sequence[str], *, returning_id: bool) -> RawStatement:
    """``INSERT INTO table (columns) VALUES (...)`` [``RETURNING id``], built once per
    table, column list and form. The parameters are named after the columns."""
    key = (table.name, tuple(columns), returning_id)
    found = _INSERTS.get(key)
    if found is None:
        from sqlalchemy import bindparam, insert

        statement = insert(table).values(
            {name: bindparam(f"p_{name}", type_=table.c[name].type) for name in columns})
        if returning_id:
            statement = statement.returning(table.c.id)
        found = _INSERTS[key] = _PrefixedInsert(statement, tuple(columns))
    return found


class _PrefixedInsert(RawStatement):
    """An insert whose parameters are ``p_<column>`` (a bind parameter may not share a
    column's name in VALUES); it takes rows keyed by column."""

    def __init__(self, statement: ClauseElement, columns: tuple[str, ...]) -> None:
        super().__init__(statement)
        self.columns = columns

    def _parameters(self, dialect: Dialect, values: Mapping[str, Any]) -> Any:
        return super()._parameters(dialect, {f"p_{name}": values[name] for name in self.columns})


def insert_rows(connection: Connection, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (dicts keyed by column) in their order: each run of consecutive
    rows with the same columns in one ``executemany``."""
    start = 0
    while start < len(rows):
        columns = tuple(rows[start])
        end = start + 1
        while end < len(rows) and tuple(rows[end]) == columns:
            end += 1
        raw_insert(table, columns, returning_id=False).execute_many(connection, rows[start:end])
        start = end


class RawLookup:
    """``SELECT columns FROM table WHERE key IN (keys)`` on the raw cursor, for columns
    that need no conversion (ids, plain strings): one ``= ANY(array)`` parameter on
    PostgreSQL (``persistence.store._lookup`` says why), an ``IN`` list on SQLite. Other
    databases take the Core statement."""

    def __init__(self, table: Any, key: str, columns: Sequence[str]) -> None:
        self.table = table
        self.key = key
        self.columns = tuple(columns)
        self._sql: dict[tuple[str, int], str] = {}

    def rows(self, connection: Connection, keys: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The matching rows as tuples of ``columns``."""
        keys = list(keys)
        if not keys:
            return []
        dialect = connection.dialect
        if dialect.name not in ("sqlite", "postgresql"):
            from sqlalchemy import select

            statement = select(*(self.table.c[name] for name in self.columns)).where(self.table.c[self.key].in_(keys))
            return [tuple(row) for row in connection.execute(statement)]
        postgresql = dialect.name == "postgresql"
        shape = (dialect.name, 0 if postgresql else len(keys))
        sql = self._sql.get(shape)
        if sql is None:
            quote = dialect.identifier_preparer.quote
            head = f"SELECT {', '.join(quote(c) for c in self.columns)} FROM {quote(self.table.name)} WHERE {quote(self.key)}"
            if postgresql:
                from sqlalchemy import String

                array = "text[]" if isinstance(self.table.c[self.key].type, String) else "bigint[]"
                sql = f"{head} = ANY(%s::{array})"
            else:
                sql = f"{head} IN ({', '.join('?' * len(keys))})"
            self._sql[shape] = sql
        params: Any = (keys,) if postgresql else tuple(keys)
        with _cursor(connection, sql, params) as cursor:
            cursor.execute(sql, params)
            return [tuple(row) for row in cursor.fetchall()]
