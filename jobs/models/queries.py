"""The record's queryset: filters that read as adjectives, and search."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from django.db import connection, models
from django.db.models import F, Q
from django.utils import timezone

from ..masking import sensitive_words
from .status import ACTIVE_STATES, FINAL_STATES, Status

SHORT_ID_MIN = 6  # hex digits: fewer would match too many jobs to be an id
CANONICAL = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"


class RecordQuerySet(models.QuerySet):
    def pending(self):
        return self.filter(status=Status.PENDING)

    def running(self):
        return self.filter(status=Status.RUNNING)

    def failed(self):
        return self.filter(status=Status.FAILED)

    def active(self):
        return self.filter(status__in=ACTIVE_STATES)

    def finished(self):
        return self.filter(status__in=FINAL_STATES)

    def ready(self, now: datetime | None = None):
        """Pending and due: waiting for a worker (a scheduled job counts once its time came)."""
        now = now or timezone.now()
        return self.filter(Q(scheduled_for__isnull=True) | Q(scheduled_for__lte=now), status=Status.PENDING)

    def scheduled(self, now: datetime | None = None):
        """Pending but not due yet: a delayed job, or one waiting for its next automatic attempt."""
        return self.filter(status=Status.PENDING, scheduled_for__gt=now or timezone.now())

    def search(self, text: str):
        """Rows whose id is `text` or starts with it (6 hex digits at least, dashes as shown or
        none), whose custom RQ id is `text`, or whose function, arguments or error contain it (any case).

        Masked keyword arguments (jobs.masking) are never matched: a search answering yes or no
        would reveal a secret prefix by prefix. On PostgreSQL the match runs on one expression
        that the trigram index record_search_trgm covers (migration 0003), so a rare match does
        not scan the table; the masked values are then dropped from the rows the index found.
        An id prefix is a range of the primary key's btree, no index of its own: on 300,000 rows
        it reads 3 index pages in 0.1 ms, as fast as an index on (id::text) text_pattern_ops,
        which would add 17 MB and a write per insert (and estimated 1,500 rows, not 1).
        """
        text = text.strip()
        try:
            return self.filter(pk=uuid.UUID(text))
        except ValueError:
            pass
        by_id = Q(pk__range=id_prefix_range(text)) if id_prefix_range(text) else Q(pk__in=[])
        by_id |= Q(rq_id=text)  # a custom RQ id (jobs.adopt), exactly as given to RQ
        if connection.vendor == "postgresql":
            return self.alias(search_text=SearchText(), public_text=PublicSearchText()).filter(
                by_id | Q(search_text__contains=text.upper(), public_text__contains=text.upper()))
        return self.alias(public_kwargs=PublicKwargs()).filter(
            by_id | Q(func_path__icontains=text) | Q(args__icontains=text) | Q(public_kwargs__icontains=text)
            | Q(error_type__icontains=text) | Q(error_message__icontains=text))


def id_prefix_range(text: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    """The lowest and highest ids starting with `text`, a short id as the pages show it; else None."""
    digits = text.replace("-", "").lower()
    if not SHORT_ID_MIN <= len(digits) < 32 or not re.fullmatch(r"[0-9a-f]+", digits):
        return None
    low = uuid.UUID(digits.ljust(32, "0"))
    if "-" in text and str(low)[:len(text)] != text.lower():
        return None  # dashes where a UUID has none: not an id
    return low, uuid.UUID(digits.ljust(32, "f"))


class SearchText(models.Func):
    """UPPER(function, arguments and error as one text): the expression record_search_trgm indexes."""

    template = ("UPPER(\"jobs_backgroundtaskrecord\".\"func_path\" || ' ' || \"jobs_backgroundtaskrecord\".\"args\"::text"
                " || ' ' || \"jobs_backgroundtaskrecord\".\"kwargs\"::text || ' ' || \"jobs_backgroundtaskrecord\".\"error_type\""
                " || ' ' || \"jobs_backgroundtaskrecord\".\"error_message\")")
    output_field = models.TextField()


class PublicKwargs(models.Func):
    """The keyword arguments as JSON text without the masked ones (PostgreSQL and SQLite)."""

    output_field = models.TextField()

    def __init__(self):
        super().__init__(F("kwargs"))

    def _masked(self, test: str) -> tuple[str, list[str]]:
        words = sensitive_words()
        return (" OR ".join([test] * len(words)) or "FALSE"), list(words)

    def as_postgresql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        masked, words = self._masked("strpos(lower(k), %s) > 0")
        # jsonb minus the masked keys; the same text form as kwargs::text for the rest.
        sql = (f"(({column}) - CASE WHEN jsonb_typeof({column}) = 'object' THEN "
               f"ARRAY(SELECT k FROM jsonb_object_keys({column}) AS k WHERE {masked}) ELSE ARRAY[]::text[] END)::text")
        return sql, (*params, *params, *params, *words)

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        masked, words = self._masked("instr(lower(key), %s) > 0")
        # A merge patch whose masked keys are null removes them (RFC 7396).
        sql = (f"CASE WHEN json_type({column}) = 'object' THEN json_patch({column}, COALESCE("
               f"(SELECT json_group_object(key, NULL) FROM json_each({column}) WHERE {masked}), '{{}}')) "
               f"ELSE {column} END")
        return sql, (*params, *params, *params, *words, *params)


class PublicSearchText(SearchText):
    """SearchText without the masked keyword arguments: it rechecks the rows the index found."""

    template = SearchText.template.replace('"jobs_backgroundtaskrecord"."kwargs"::text', "%(expressions)s")

    def __init__(self):
        super().__init__(PublicKwargs())
