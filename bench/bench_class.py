"""A class: `mlgrade grade` on N generated ml-hw6 submissions with -j J, against one
`mlgrade run` subprocess per submission; peak memory per pool process.

    python bench/bench_class.py [-n 200] [-j 2] [--serial-sample 20]

The one-process-per-submission figure is measured on a random sample (--serial-sample) of the
same class and scaled per submission, since 200 serial runs take ~half an hour here.
"""
from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, make_class, mlgrade_cmd

sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--serial-sample", type=int, default=20)
    args = ap.parse_args()
    import subprocess

    from mlgrade.course import open_course
    from mlgrade.batch import grade_class

    print(machine())
    a = open_course(ROOT).get("ml-hw6")
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "class"
        kinds = make_class(subs, args.n)
        print(f"class: {args.n} submissions {kinds}")
        start = time.perf_counter()
        summary = grade_class(a, subs, Path(tmp) / "out", jobs=args.j, force=True, timeout=900, progress=False)
        pooled = time.perf_counter() - start
        print(f"mlgrade grade -j {args.j}: {pooled:.1f} s, {pooled / args.n:.3f} s per submission (goal <= 0.15 s); "
              f"graded {summary.graded}, failed {summary.failed}")
        for pid, mb in sorted(summary.peak_rss_mb.items()):
            print(f"  pool process {pid}: peak RSS {mb:.0f} MB (grading process; each sandbox worker is separate)")

        names = sorted(p.name for p in subs.iterdir())
        sample = random.Random(1).sample(names, min(args.serial_sample, len(names)))
        start = time.perf_counter()
        for name in sample:
            subprocess.run([*mlgrade_cmd(), "run", "ml-hw6", str(subs / name), "--results", str(Path(tmp) / "r.json")],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        serial = (time.perf_counter() - start) / len(sample)
        print(f"one `mlgrade run` process per submission (sample of {len(sample)}): {serial:.2f} s per submission, "
              f"{serial * args.n:.0f} s for the class (estimated)")
        print(f"ratio: pool -j {args.j} is {serial / (pooled / args.n):.2f}x faster per submission")


if __name__ == "__main__":
    main()
