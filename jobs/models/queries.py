"""The record's queryset: filters that read as adjectives, and search."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import connection, models
from django.db.models import Q
from django.utils import timezone

from .status import ACTIVE_STATES, FINAL_STATES, Status


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
        """Rows whose id is `text`, or whose function, arguments or error contain it (any case).

        On PostgreSQL the match runs on one expression that the trigram index
        record_search_trgm covers (migration 0003), so a rare match does not scan the table.
        """
        try:
            return self.filter(pk=uuid.UUID(text.strip()))
        except ValueError:
            pass
        if connection.vendor == "postgresql":
            return self.annotate(search_text=SearchText()).filter(search_text__contains=text.upper())
        return self.filter(Q(func_path__icontains=text) | Q(args__icontains=text) | Q(kwargs__icontains=text)
                           | Q(error_type__icontains=text) | Q(error_message__icontains=text))


class SearchText(models.Func):
    """UPPER(function, arguments and error as one text): the expression record_search_trgm indexes."""

    template = ("UPPER(\"jobs_backgroundtaskrecord\".\"func_path\" || ' ' || \"jobs_backgroundtaskrecord\".\"args\"::text"
                " || ' ' || \"jobs_backgroundtaskrecord\".\"kwargs\"::text || ' ' || \"jobs_backgroundtaskrecord\".\"error_type\""
                " || ' ' || \"jobs_backgroundtaskrecord\".\"error_message\")")
    output_field = models.TextField()
