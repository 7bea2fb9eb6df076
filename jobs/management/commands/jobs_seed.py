import time

from django.core.management.base import BaseCommand

from jobs.seed import seed_records


class Command(BaseCommand):
    help = "Insert realistic synthetic job history (1% failed with tracebacks, some pending and running)."

    def add_arguments(self, parser):
        parser.add_argument("--records", type=int, default=10_000)
        parser.add_argument("--days", type=int, default=30, help="spread over the last DAYS days")
        parser.add_argument("--failed-ratio", type=float, default=0.01)
        parser.add_argument("--active", type=int, default=200, help="how many of the newest are pending/running")

    def handle(self, *args, records, days, failed_ratio, active, **options):
        started = time.perf_counter()
        written = seed_records(records, days=days, failed_ratio=failed_ratio, active=active)
        elapsed = time.perf_counter() - started
        self.stdout.write(f"seeded {written} records in {elapsed:.1f} s ({written / elapsed:,.0f} rows/s)")
