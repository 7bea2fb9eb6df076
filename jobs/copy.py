"""Fast bulk inserts: PostgreSQL's COPY for model instances, bulk_create elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import connection, models
from django.utils import timezone


def insert_many(model: type[models.Model], objs: Sequence[models.Model], batch_size: int = 2000) -> None:
    """INSERT `objs` in as few statements as possible.

    On PostgreSQL this streams them through COPY, several times faster than bulk_create
    for wide rows (measured in bench/enqueue.py), because values go to psycopg as they
    are instead of through each field's get_db_prep_save. Defaults are already set on
    constructed instances; empty auto_now fields get the current time.
    """
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objs, batch_size=batch_size)
        return
    from psycopg.types.json import Jsonb

    # Auto-increment keys are left to the database's sequence.
    fields = [f for f in model._meta.concrete_fields if not isinstance(f, models.fields.AutoFieldMixin)]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    is_json = [isinstance(f, models.JSONField) for f in fields]
    attnames = [f.attname for f in fields]
    now = timezone.now()
    for obj in objs:
        for field in fields:
            if getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                if getattr(obj, field.attname) is None:
                    setattr(obj, field.attname, now)
    with connection.cursor() as cursor:
        with cursor.cursor.copy(f"COPY {connection.ops.quote_name(model._meta.db_table)} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                row = [getattr(obj, name) for name in attnames]
                copy.write_row([Jsonb(v) if json and v is not None else v for v, json in zip(row, is_json)])
