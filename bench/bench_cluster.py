"""A class on Dask LocalClusters (2 worker processes, loopback) over mutual TLS and over plain
TCP, and the local pool (-j 2), in one run on one machine: seconds per submission and the
ratios (what TLS costs per task; what the cluster costs against the pool).

    python bench/bench_cluster.py [-n 200] [-w 2] [--order tcp,tls,pool]

Every side grades the same generated ml-hw6 class (bench/common.py's make_class) with
force=True. Each cluster is started (and its workers have imported torch) before its clock
starts, as a standing cluster would be; each side's first gradings still start their fork
servers and fill the reference's memo, as the pool's do. The TLS cluster uses certificates of
`mlgrade certificates` (a scheduler, worker and client certificate of one CA).
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
    ap.add_argument("--order", default="tcp,tls", help="sides in the order they run: tcp, tls, pool")
    args = ap.parse_args()

    from mlgrade.course import open_course
    from mlgrade.batch import grade_class
    from mlgrade.certificates import write_certificates
    from mlgrade.cluster import connect, folder_security, local_cluster

    print(machine())
    a = open_course(ROOT).get("ml-hw6")
    sides = args.order.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        subs = Path(tmp) / "class"
        print(f"class: {args.n} submissions {make_class(subs, args.n)}")
        write_certificates(Path(tmp) / "tls", days=1)
        seconds = {}
        for side in sides:
            security = folder_security(Path(tmp) / "tls") if side == "tls" else None
            client = folder_security(Path(tmp) / "tls", roles=("client",)) if side == "tls" else None
            if side == "pool":
                start = time.perf_counter()
                summary = grade_class(a, subs, Path(tmp) / side, jobs=args.workers, force=True, timeout=900,
                                      progress=False)
                seconds[side] = time.perf_counter() - start
            else:
                with local_cluster(args.workers, security=security) as lc, \
                        connect(lc.scheduler_address, a, client) as grader:
                    start = time.perf_counter()
                    summary = grade_class(a, subs, Path(tmp) / side, force=True, timeout=900, progress=False,
                                          run=grader.run)
                    seconds[side] = time.perf_counter() - start
                    print(f"{side}: scheduler {lc.scheduler_address}")
            print(f"{side}: {seconds[side]:.1f} s, {seconds[side] / args.n:.3f} s per submission; "
                  f"graded {summary.graded}, failed {summary.failed}", flush=True)
        scores = {side: (Path(tmp) / side / "scores.csv").read_bytes() for side in sides}
        print(f"scores.csv identical: {len(set(scores.values())) == 1}")
        if {"tcp", "tls"} <= set(seconds):
            print(f"ratio TLS / TCP: {seconds['tls'] / seconds['tcp']:.2f}x the wall "
                  f"({(seconds['tls'] - seconds['tcp']) / args.n * args.workers:+.3f} s of worker time per task)")
        for side in ("tcp", "tls"):
            if side in seconds and "pool" in seconds:
                print(f"ratio cluster ({side}) / pool: {seconds[side] / seconds['pool']:.2f}x the wall")


if __name__ == "__main__":
    main()
