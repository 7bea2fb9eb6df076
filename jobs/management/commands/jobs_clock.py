import time

from django.core.management.base import BaseCommand

from jobs.conf import jobs_setting
from jobs.clock import run_clock
from jobs.dbtimeouts import bound_this_process


class Command(BaseCommand):
    help = ("The clock process: reconcile every JOBS_RECONCILE_SECONDS, sample queues every minute, "
            "enqueue the periodic entries (JOBS_PERIODIC, @periodic) when due.")

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="run every duty once and exit")

    def handle(self, *args, once=False, **options):
        # The clock alone talks to the database here: a silent database fails a duty after
        # JOBS_DB_STATEMENT_TIMEOUT_MS, and the duty is tried again on its next turn.
        bound_this_process()
        run_clock(once=once, write=self.stdout.write, sleep=time.sleep,
                  reconcile_every=jobs_setting("JOBS_RECONCILE_SECONDS"))
