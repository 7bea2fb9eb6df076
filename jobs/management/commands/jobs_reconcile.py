import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from jobs.reconcile import reconcile_records


class Command(BaseCommand):
    help = "Compare pending and running records with Redis, repair drift and print what changed."

    def add_arguments(self, parser):
        parser.add_argument("--loop", type=float, metavar="SECONDS",
                            help="run again every SECONDS until stopped (the Procfile's clock does)")
        parser.add_argument("--dry-run", action="store_true", help="report what would change, change nothing")

    def handle(self, *args, loop=None, dry_run=False, **options):
        while True:
            close_old_connections()
            try:
                report = reconcile_records(dry_run=dry_run)
            except Exception as exc:
                if not loop:
                    raise
                # The database or Redis is down: the clock keeps going and tries again.
                self.stderr.write(f"reconcile failed: {exc.__class__.__name__}: {exc}")
            else:
                if report.changed or report.errors or not loop:
                    self.stdout.write(report.summary())
            if not loop:
                return
            time.sleep(loop)
