"""A class on a Dask LocalCluster (2 worker processes, loopback) next to the local pool (-j 2),
in one run on one machine: seconds per submission and the ratio (the cluster's cost per task).

    python bench/bench_cluster.py [-n 200] [-w 2] [--order pool,cluster]

Both grade the same generated ml-hw6 class (bench/common.py's make_class) with force=True.
The cluster is started (and its workers have imported torch) before its clock starts, as a
standing cluster would be; each side's first gradings still start their fork servers and fill
the reference's memo, as the pool's do.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, make_class

sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("-w", "--workers", type=int, default=2, help="Dask workers, and -j of the local pool")
    ap.add_argument("--order", default="pool,cluster", help="which side runs first")
    args = ap.parse_args()

    from mlgrade.course import open_course
    from mlgrade.batch import grade_class
    from mlgrade.cluster import connect, local_cluster

    print(machine())
    a = open_course(ROOT).get("ml-hw6")
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "class"
        print(f"class: {args.n} submissions {make_class(subs, args.n)}")
        seconds = {}
        with local_cluster(args.workers) as lc, connect(lc.scheduler_address, a) as grader:
            for side in args.order.split(","):
                run = grader.run if side == "cluster" else None
                start = time.perf_counter()
                summary = grade_class(a, subs, Path(tmp) / side, jobs=args.workers, force=True, timeout=900,
                                      progress=False, run=run)
                seconds[side] = time.perf_counter() - start
                print(f"{side}: {seconds[side]:.1f} s, {seconds[side] / args.n:.3f} s per submission; "
                      f"graded {summary.graded}, failed {summary.failed}")
        same = (Path(tmp) / "pool" / "scores.csv").read_bytes() == (Path(tmp) / "cluster" / "scores.csv").read_bytes()
        print(f"scores.csv identical: {same}")
        print(f"ratio cluster / pool: {seconds['cluster'] / seconds['pool']:.2f}x the wall "
              f"({(seconds['cluster'] - seconds['pool']) / args.n * args.workers:+.3f} s of worker time per task)")


if __name__ == "__main__":
    main()
