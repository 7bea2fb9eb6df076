from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from jobs.conf import jobs_setting
from jobs.prune import BATCH_SIZE, prune_records, retention_enabled


class Command(BaseCommand):
    help = "Delete finished jobs (completed, failed, cancelled) older than JOBS_RETENTION_DAYS."

    def add_arguments(self, parser):
        parser.add_argument("--older-than", type=float, metavar="DAYS",
                            help="age in days of the finished jobs to delete (default: JOBS_RETENTION_DAYS)")
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE, help="rows per DELETE transaction")

    def handle(self, *args, older_than=None, dry_run=False, batch_size=BATCH_SIZE, **options):
        days = older_than if older_than is not None else jobs_setting("JOBS_RETENTION_DAYS")
        if older_than is None and not retention_enabled():
            raise CommandError("JOBS_RETENTION_DAYS disables pruning: pass --older-than DAYS")
        if days < 0:
            raise CommandError("--older-than must be 0 or more days")
        count = prune_records(timedelta(days=days), batch_size=batch_size, dry_run=dry_run)
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"jobs_prune: {verb} {count} finished jobs older than {days:g} days")
