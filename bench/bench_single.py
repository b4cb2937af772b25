"""Single submission: wall of `mlgrade run` on the reference next to `python -c "import torch"`.

    python bench/bench_single.py [--repeat 3]

The commands run in turns (torch, ml-hw6, cs446-hw2, torch, ...) so that a machine whose
speed drifts moves all of them alike; each ratio is of the medians of that one run.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from common import ROOT, machine, mlgrade_cmd, wall

IDS = ("ml-hw6", "cs446-hw2")
GOALS = {"ml-hw6": 1.2, "cs446-hw2": 2.0}


def main() -> None:
    from mlgrade.course import open_course

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(machine())
    commands = {"import torch": [sys.executable, "-c", "import torch"]}
    with tempfile.TemporaryDirectory() as tmp:
        for aid in IDS:
            a = open_course(ROOT).get(aid)
            if not a.has_graders():
                print(f"{aid}: no graders yet, skipped")
                continue
            folder = Path(tmp) / aid
            folder.mkdir()
            for spec in a.files:
                shutil.copy(a.reference_dir / spec.name, folder / spec.name)
            commands[aid] = [*mlgrade_cmd(), "run", aid, str(folder), "--results", str(folder / "r.json")]
        walls = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, cmd in commands.items():
                walls[name].append(wall(cmd, 1, cwd=ROOT))
    torch_s = statistics.median(walls["import torch"])
    print(f"python -c 'import torch': median {torch_s:.2f} s of {', '.join(f'{w:.2f}' for w in walls['import torch'])}")
    for aid in IDS:
        if aid in walls:
            s = statistics.median(walls[aid])
            print(f"mlgrade run {aid} <reference>: median {s:.2f} s of {', '.join(f'{w:.2f}' for w in walls[aid])}; "
                  f"ratio to import torch {s / torch_s:.2f}x (goal <= {GOALS[aid]}x)")


if __name__ == "__main__":
    main()
