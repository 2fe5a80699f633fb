"""Statements built with SQLAlchemy Core once, then run straight on the driver's cursor.

For the hottest statements (a step's commit writes four small rows; a poll reads a token and a
generation) SQLAlchemy's work per execution (the compiled-cache lookup, building the parameters,
setting up a result) cost more than the database needs to run them, so they are compiled once
per dialect, with their bind processors, and executed on the DBAPI cursor of the same
connection and transaction (or none, in :func:`~plushify_core.database.reading`). What
SQLAlchemy would add still happens: ``before_cursor_execute`` listeners see each statement
(statement counts, fault injection), driver errors are raised as SQLAlchemy's ``DBAPIError`` and
a lost connection is invalidated so the pool replaces it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement, ColumnElement

__all__ = ["Prepared"]

_Processor = Callable[[Any], Any] | None


class _Compiled:
    """One dialect's SQL text, and how to turn named values into the driver's parameters."""

    def __init__(
        self,
        stmt: ClauseElement,
        keys: Sequence[str],
        columns: Sequence[ColumnElement[Any]],
        dialect: Dialect,
    ) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=list(keys))
        assert isinstance(compiled, SQLCompiler)  # DML and SELECT always compile to one
        self.sql = compiled.string
        self.positional = bool(compiled.positional)
        names = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self.binds: list[tuple[str, Any, _Processor]] = []
        for name in names:
            bind = compiled.binds[name]
            processor = bind.type.dialect_impl(dialect).bind_processor(dialect)
            self.binds.append((name, None if bind.required else bind.effective_value, processor))
        self.columns: list[tuple[str, _Processor]] = [
            (str(c.key), c.type.dialect_impl(dialect).result_processor(dialect, None))
            for c in columns
        ]

    def parameters(self, values: dict[str, Any]) -> Sequence[Any] | dict[str, Any]:
        out: list[Any] = []
        for name, default, processor in self.binds:
            value = values.get(name, default)
            out.append(value if processor is None else processor(value))
        if self.positional:
            return out
        return {name: value for (name, _, _), value in zip(self.binds, out, strict=True)}


class Prepared:
    """A Core statement that runs on the connection's cursor.

    ``keys`` are the columns an INSERT or UPDATE is given; ``columns`` are those it returns
    (its ``RETURNING`` or ``SELECT`` list, in order), read back through their SQLAlchemy types.
    """

    def __init__(
        self,
        stmt: ClauseElement,
        keys: Sequence[str] = (),
        columns: Sequence[ColumnElement[Any]] = (),
    ) -> None:
        self._stmt, self._keys, self._columns = stmt, tuple(keys), tuple(columns)
        # By dialect and driver: two drivers of one database may take parameters differently.
        self._by_dialect: dict[tuple[str, str], _Compiled] = {}

    def execute(self, conn: Connection, values: dict[str, Any]) -> None:
        """Run the statement with ``values`` (by bind or column name) in ``conn``'s transaction."""
        self._run(conn, values, fetch=False)

    def rows(self, conn: Connection, values: dict[str, Any]) -> list[dict[str, Any]]:
        """Run the statement and return its rows, by column key, as SQLAlchemy would type them."""
        compiled, raw = self._run(conn, values, fetch=True)
        columns = compiled.columns
        return [
            {key: v if p is None else p(v) for (key, p), v in zip(columns, row, strict=True)}
            for row in raw
        ]

    def _run(
        self, conn: Connection, values: dict[str, Any], *, fetch: bool
    ) -> tuple[_Compiled, Sequence[Any]]:
        dialect = conn.dialect
        key = (dialect.name, dialect.driver)
        compiled = self._by_dialect.get(key)
        if compiled is None:
            compiled = _Compiled(self._stmt, self._keys, self._columns, dialect)
            self._by_dialect[key] = compiled
        params = compiled.parameters(values)
        cursor = conn.connection.cursor()
        if conn.dispatch.before_cursor_execute:
            conn.dispatch.before_cursor_execute(conn, cursor, compiled.sql, params, None, False)
        try:
            cursor.execute(compiled.sql, params)
            # Read every row: a statement left half-read stays open on SQLite.
            return compiled, cursor.fetchall() if fetch else []
        except dialect.loaded_dbapi.Error as exc:
            if dialect.is_disconnect(exc, conn.connection.dbapi_connection, cursor):
                conn.invalidate(exc)
            raise sa.exc.DBAPIError.instance(
                compiled.sql, params, exc, dialect.loaded_dbapi.Error
            ) from exc
        finally:
            cursor.close()
