"""`python -m bench` (make bench): run every benchmark; exit 1 if a target was missed."""

from __future__ import annotations

import sys

from bench import (
    audit_cost,
    booking_throughput,
    console_day_sheet,
    consumer_throughput,
    notifier_apscheduler,
    notifier_dispatch,
    notifier_pacing,
    notifier_schedule,
    plans_throughput,
    tracing_cost,
)
from bench.common import TARGETS

BENCHMARKS = [consumer_throughput, booking_throughput, plans_throughput, notifier_schedule,
              notifier_dispatch, notifier_apscheduler, notifier_pacing, console_day_sheet,
              tracing_cost, audit_cost]


def main() -> int:
    ok = True
    for bench in BENCHMARKS:
        ok &= bench.run(sys.argv[1:])
    print("\n== targets (medians of 3 rounds where the benchmark runs rounds)")
    for target in TARGETS:
        print(f"   {target}")
    print("\nall targets met" if ok else "\nsome targets were NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
