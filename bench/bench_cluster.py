"""A class on Dask LocalClusters (2 worker processes, loopback) over mutual TLS and over plain
TCP, and the local pool (-j 2), in one run on one machine: seconds per submission and the
ratios (what TLS costs per task; what the cluster costs against the pool).

    python bench/bench_cluster.py [-n 200] [-w 2] [--order tcp,tls,pool] [--rounds 8]

Every side grades the same generated ml-hw6 class (bench/common.py's make_class) with
force=True. All sides' clusters are started (and their workers have imported torch) before any
clock starts, as standing clusters would be. The class is graded in ``--rounds`` slices, the
sides taking turns on each slice (in the given order, then reversed), so a change of the
machine's load during the run falls on every side alike. Each side's first slice still starts
its fork servers and fills the reference's memo, as the pool's does. The TLS cluster uses
certificates of `mlgrade certificates` (a scheduler, worker and client certificate of one CA).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import shutil
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
    ap.add_argument("--order", default="tcp,tls", help="the sides, in the order they take the first slice: tcp, tls, pool")
    ap.add_argument("--rounds", type=int, default=8, help="slices of the class; the sides take turns on each")
    args = ap.parse_args()

    from mlgrade.course import open_course
    from mlgrade.batch import grade_class
    from mlgrade.certificates import write_certificates
    from mlgrade.cluster import connect, folder_security, local_cluster

    print(machine())
    a = open_course(ROOT).get("ml-hw6")
    sides = args.order.split(",")
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        tmp = Path(tmp)
        subs = tmp / "class"
        print(f"class: {args.n} submissions {make_class(subs, args.n)}")
        students = sorted(p.name for p in subs.iterdir())
        write_certificates(tmp / "tls", days=1)
        runs = {}  # side -> keyword arguments of grade_class that send the class there
        for side in sides:
            if side == "pool":
                runs[side] = {"jobs": args.workers}
                continue
            tls = side == "tls"
            lc = stack.enter_context(local_cluster(args.workers, security=folder_security(tmp / "tls") if tls else None))
            grader = stack.enter_context(connect(lc.scheduler_address, a,
                                                 folder_security(tmp / "tls", roles=("client",)) if tls else None))
            print(f"{side}: scheduler {lc.scheduler_address}")
            runs[side] = {"run": grader.run}
        seconds = dict.fromkeys(sides, 0.0)
        counts = {side: [0, 0] for side in sides}
        print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
        for r in range(args.rounds):
            part = tmp / "slices" / f"r{r}"
            part.mkdir(parents=True)
            for name in students[r * len(students) // args.rounds:(r + 1) * len(students) // args.rounds]:
                shutil.copytree(subs / name, part / name)
            for side in (sides if r % 2 == 0 else sides[::-1]):
                start = time.perf_counter()
                summary = grade_class(a, part, tmp / side / f"r{r}", force=True, timeout=900, progress=False, **runs[side])
                seconds[side] += time.perf_counter() - start
                counts[side][0] += summary.graded
                counts[side][1] += summary.failed
            print(f"slice {r + 1}/{args.rounds}: " + ", ".join(f"{s} {seconds[s]:.1f} s" for s in sides)
                  + f" (load {os.getloadavg()[0]:.2f})", flush=True)
        for side in sides:
            print(f"{side}: {seconds[side]:.1f} s, {seconds[side] / args.n:.3f} s per submission; "
                  f"graded {counts[side][0]}, failed {counts[side][1]}", flush=True)
        scores = {side: b"".join((tmp / side / f"r{r}" / "scores.csv").read_bytes() for r in range(args.rounds))
                  for side in sides}
        print(f"scores.csv identical: {len(set(scores.values())) == 1}")
        if {"tcp", "tls"} <= set(seconds):
            print(f"ratio TLS / TCP: {seconds['tls'] / seconds['tcp']:.3f}x the wall "
                  f"({(seconds['tls'] - seconds['tcp']) / args.n * args.workers:+.3f} s of worker time per task)")
        for side in ("tcp", "tls"):
            if side in seconds and "pool" in seconds:
                print(f"ratio cluster ({side}) / pool: {seconds[side] / seconds['pool']:.2f}x the wall")


if __name__ == "__main__":
    main()
