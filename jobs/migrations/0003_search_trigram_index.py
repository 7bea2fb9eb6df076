"""A trigram index for the job search on PostgreSQL (no-op elsewhere).

It covers jobs.models.SearchText, the exact expression RecordQuerySet.search() matches,
so a search for a rare string reads the index instead of every row.
"""

from django.db import migrations

EXPRESSION = (
    "UPPER(\"jobs_backgroundtaskrecord\".\"func_path\" || ' ' || \"jobs_backgroundtaskrecord\".\"args\"::text"
    " || ' ' || \"jobs_backgroundtaskrecord\".\"kwargs\"::text || ' ' || \"jobs_backgroundtaskrecord\".\"error_type\""
    " || ' ' || \"jobs_backgroundtaskrecord\".\"error_message\")"
)


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(
        f"CREATE INDEX IF NOT EXISTS record_search_trgm ON jobs_backgroundtaskrecord USING gin ({EXPRESSION} gin_trgm_ops)"
    )


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS record_search_trgm")


class Migration(migrations.Migration):
    dependencies = [("jobs", "0002_indexes_for_counts_and_audit")]
    operations = [migrations.RunPython(forwards, backwards, elidable=False)]
