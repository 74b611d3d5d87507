"""Benchmark: 200 partitions against the fake server (1 s latency) with 20% injected transient
faults at concurrency 16, against the same run without faults: wall time and spend.

    .venv/bin/python bench/replicate_faults.py [--partitions 200] [--latency 1.0] [--faults 0.2]
"""

import argparse
import tempfile
from pathlib import Path

from replicate_budget import range_run  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--partitions", type=int, default=200)
    parser.add_argument("--latency", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--faults", type=float, default=0.2)
    args = parser.parse_args()
    runs = {}
    for label, rate in (("fault-free", 0.0), (f"{args.faults:.0%} faults", args.faults)):
        with tempfile.TemporaryDirectory() as tmp:
            runs[label] = range_run(Path(tmp), args.partitions, args.latency, args.concurrency, fault_rate=rate)
    (clean_wall, _, clean_bill, clean_count), (wall, _, bill, count) = runs.values()
    print(f"{args.partitions} partitions, latency {args.latency:.1f} s, concurrency {args.concurrency}")
    print(f"  fault-free   wall {clean_wall:.2f} s, {clean_count} images, spend ${clean_bill:.4f}")
    print(f"  {args.faults:.0%} faults   wall {wall:.2f} s, {count} images, spend ${bill:.4f}")
    print(f"  ratio        wall x{wall / clean_wall:.2f}, spend x{bill / clean_bill:.2f}")


if __name__ == "__main__":
    main()
