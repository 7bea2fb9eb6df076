"""Fast inserts: one row by a cached statement, many by PostgreSQL's COPY (bulk_create elsewhere)."""

from __future__ import annotations

import operator
from collections.abc import Sequence

from django.db import connection, models, transaction
from django.utils import timezone


def insert_one(obj: models.Model) -> None:
    """INSERT one new instance whose primary key is already set, without save()'s machinery.

    The statement save(force_insert=True) runs, built once per model and database. On
    PostgreSQL the values go to psycopg as they are (as in insert_many's COPY), elsewhere
    through each field's get_db_prep_save. No signals are sent (nothing in jobdeck listens;
    bulk_create and COPY send none either). Models with an auto-increment key go to save().
    """
    fields = obj._meta.concrete_fields
    if obj.pk is None or any(hasattr(f, "get_placeholder") for f in fields):
        obj.save(force_insert=True)
        return
    sql = _insert_sql(type(obj), connection.vendor)
    if connection.vendor == "postgresql":
        from psycopg.types.json import Jsonb

        for field in fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                field.pre_save(obj, True)
        params = [Jsonb(value) if value is not None and isinstance(field, models.JSONField) else value
                  for field, value in zip(fields, (getattr(obj, f.attname) for f in fields))]
    else:
        params = [field.get_db_prep_save(field.pre_save(obj, True), connection) for field in fields]
    with transaction.mark_for_rollback_on_error(connection.alias), connection.cursor() as cursor:
        cursor.execute(sql, params)
    obj._state.adding = False
    obj._state.db = connection.alias


_insert_statements: dict[tuple[type, str], str] = {}


def _insert_sql(model: type[models.Model], vendor: str) -> str:
    key = (model, vendor)
    if key not in _insert_statements:
        quote = connection.ops.quote_name
        fields = model._meta.concrete_fields
        _insert_statements[key] = (f"INSERT INTO {quote(model._meta.db_table)} "
                                   f"({', '.join(quote(f.column) for f in fields)}) "
                                   f"VALUES ({', '.join(['%s'] * len(fields))})")
    return _insert_statements[key]


def insert_many(model: type[models.Model], objs: Sequence[models.Model], batch_size: int = 2000) -> None:
    """INSERT `objs` in as few statements as possible.

    On PostgreSQL this streams them through a binary COPY, several times faster than
    bulk_create for wide rows (measured in bench/enqueue.py), because values go to psycopg
    as they are instead of through each field's get_db_prep_save; binary, because that
    halves the parsing on both sides (jsonb columns take the Python values as they are).
    Defaults are already set on constructed instances; empty auto_now fields get the
    current time.
    """
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=batch_size)
        return
    # Auto-increment keys are left to the database's sequence.
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, models.fields.AutoFieldMixin)]
    stamped = [f.attname for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)]
    now = timezone.now()
    for obj in objs:
        for name in stamped:
            if getattr(obj, name) is None:
                setattr(obj, name, now)
    row = operator.attrgetter(*(f.attname for f in fields))
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        types = _column_types(cursor, model._meta.db_table)
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types([types[f.column] for f in fields])
            for obj in objs:
                copy.write_row(row(obj))


_column_types_cache: dict[str, dict[str, int]] = {}


def _column_types(cursor, table: str) -> dict[str, int]:
    """Column name → type OID, which a binary COPY needs; read once per table and process
    (the model's columns are built-in types, whose OIDs are the same in every database)."""
    if table not in _column_types_cache:
        cursor.execute("SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
                       [table])
        _column_types_cache[table] = dict(cursor.fetchall())
    return _column_types_cache[table]

