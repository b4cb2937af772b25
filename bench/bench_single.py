"""Single submission: wall of `mlgrade run` on the reference next to `python -c "import torch"`.

    python bench/bench_single.py [--repeat 3]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import ROOT, machine, mlgrade_cmd, wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(machine())
    torch_s = wall([sys.executable, "-c", "import torch"], args.repeat)
    print(f"python -c 'import torch': {torch_s:.2f} s (best of {args.repeat})")
    for aid in ("ml-hw6", "cs446-hw2"):
        ref = ROOT / "reference" / aid
        if not (ROOT / "graders" / aid).is_dir():
            print(f"{aid}: no graders yet, skipped")
            continue
        with tempfile.TemporaryDirectory() as tmp:
            from mlgrade import assignments

            a = assignments.get(aid, ROOT)
            for spec in a.files:
                shutil.copy(ref / spec.name, Path(tmp) / spec.name)
            s = wall([*mlgrade_cmd(), "run", aid, tmp, "--results", str(Path(tmp) / "r.json")], args.repeat, cwd=ROOT)
        print(f"mlgrade run {aid} <reference>: {s:.2f} s  ratio to import torch: {s / torch_s:.2f}x (goal <= 1.2x)")


if __name__ == "__main__":
    main()
