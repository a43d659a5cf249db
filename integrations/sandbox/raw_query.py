"""Small, hot ``values_list`` queries run without the ORM's per-call and per-row work.

The caches (record_cache, property_cache) check their content with a narrow query on
every request. Compiling such a query costs about as much as running it, and the ORM's row
iteration more, so ``rows`` compiles each query shape once per database and runs the SQL
on a cursor. A shape's compiled SQL is reused only when its parameters are exactly the
arguments in order, which is checked when it is compiled.

``signature`` answers the same query as one comparable value. On SQLite it is the rows
joined into one text by the database: Python's SQLite driver releases and retakes the GIL
for every row it steps through, and with a few requests running at once each retake can
wait out another thread's whole time slice, which made reading ten thousand small rows
several times slower under load than alone. Elsewhere it is the list of rows.
"""

from collections.abc import Callable, Sequence

from django.db import connections
from django.db.models import QuerySet

_MAX_SHAPES = 256
_compiled: dict[tuple, str] = {}
# Separators and the NULL mark of joined rows: control characters no stamp contains.
_FIELD, _ROW, _NULL = "\x1f", "\x1e", "\x15"

Build = Callable[..., QuerySet]


def rows(alias: str, build: Build, *args: object) -> list[tuple]:
    """The rows of ``build(alias, *args)``, a values_list query on database ``alias`` whose
    parameters are ``args`` (a list argument being an IN list)."""
    sql, params = _sql(alias, build, args)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def signature(
    alias: str, build: Build, names: Sequence[str], *args: object
) -> str | list[tuple] | None:
    """``rows`` as one value that is equal for equal answers (``rows_of`` reads it back).

    ``names`` are the columns ``build`` selects, in order, each a named annotation."""
    if connections[alias].vendor != "sqlite":
        return rows(alias, build, *args)
    sql, params = _sql(alias, build, args)
    quote = connections[alias].ops.quote_name
    joined = " || char(31) || ".join(
        f"IFNULL(CAST({quote(name)} AS TEXT), char(21))" for name in names
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT group_concat({joined}, char(30)) FROM ({sql}) AS stamps", params)
        return cursor.fetchone()[0]


def rows_of(value: str | list[tuple] | None, types: Sequence[type]) -> list[tuple]:
    """The rows a ``signature`` stands for, each column converted by ``types`` (or None)."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [
        tuple(
            None if text == _NULL else kind(text)
            for kind, text in zip(types, row.split(_FIELD), strict=True)
        )
        for row in value.split(_ROW)
    ]


def _sql(alias: str, build: Build, args: tuple) -> tuple[str, list]:
    shape = (alias, build, tuple(len(a) if isinstance(a, list | tuple) else None for a in args))
    params = [item for arg in args for item in (arg if isinstance(arg, list | tuple) else (arg,))]
    sql = _compiled.get(shape)
    if sql is None:
        sql, compiled_params = build(alias, *args).query.sql_with_params()
        if _same(compiled_params, params):
            if len(_compiled) >= _MAX_SHAPES:
                _compiled.clear()
            _compiled[shape] = sql
        else:
            params = list(compiled_params)
    return sql, params


def _same(compiled: Sequence[object], given: Sequence[object]) -> bool:
    # Types too: an account id must not stand where an object name was compiled.
    return len(compiled) == len(given) and all(
        type(a) is type(b) and a == b for a, b in zip(compiled, given, strict=True)
    )
