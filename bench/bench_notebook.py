"""A notebook graded from its definitions: ml2-sheet10 as sheet10.ipynb (the sheet's 100-epoch
training loop, data loading and plots at top level) next to the same functions as sheet10.py.

    python bench/bench_notebook.py [--repeat 3] [--execute]

Both submissions are graded by ``mlgrade run`` in turns (ipynb, py, ipynb, py, ...) so that the
machine's load falls on both alike; the figure is the ratio of the best walls, and both scores
must be equal. ``--execute`` also times running the notebook itself (what a grader that executes
notebooks pays per submission, before any test).
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine, mlgrade_cmd

AID = "ml2-sheet10"


def submissions(tmp: Path) -> dict[str, Path]:
    """{"ipynb": folder with the reference notebook, "py": folder with its definitions as sheet10.py}."""
    from mlgrade.course import open_course
    from mlgrade.loading import load_file

    a = open_course(ROOT).get(AID)
    out = {}
    for kind in ("ipynb", "py"):
        folder = tmp / kind
        folder.mkdir()
        shutil.copy(a.reference_dir / "sheet10_theory.py", folder)
        out[kind] = folder
    shutil.copy(a.reference_dir / "sheet10.ipynb", out["ipynb"])
    kept = load_file(a.reference_dir, ["sheet10.ipynb"])  # the notebook's imports and definitions
    (out["py"] / "sheet10.py").write_text("\n\n".join(source.strip("\n") for _, source in kept.chunks) + "\n")
    return out


def grade(folder: Path) -> tuple[float, float]:
    """(wall seconds, score) of one `mlgrade run`."""
    results = folder / "results.json"
    start = time.perf_counter()
    subprocess.run([*mlgrade_cmd(), "run", AID, str(folder), "--results", str(results)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - start, json.loads(results.read_text())["score"]


def execute_notebook(folder: Path) -> float:
    """Seconds to run the notebook end to end (nbclient), the sheet's helpers beside it."""
    import nbformat
    from nbclient import NotebookClient

    from mlgrade.course import open_course

    a = open_course(ROOT).get(AID)
    for helper in a.helpers:
        shutil.copy(a.helper_path(helper), folder)
    nb = nbformat.read(str(folder / "sheet10.ipynb"), as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=3600, resources={"metadata": {"path": str(folder)}}).execute()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--execute", action="store_true", help="also time executing the notebook itself")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        folders = submissions(Path(tmp))
        walls, scores = {"ipynb": [], "py": []}, {}
        for _ in range(args.repeat):
            for kind, folder in folders.items():
                seconds, scores[kind] = grade(folder)
                walls[kind].append(seconds)
        for kind in walls:
            print(f"mlgrade run {AID} sheet10.{kind}: best {min(walls[kind]):.2f} s of "
                  f"{', '.join(f'{s:.2f}' for s in walls[kind])}; score {scores[kind]:g}")
        ratio = min(walls["ipynb"]) / min(walls["py"])
        print(f"ratio ipynb / py: {ratio:.2f}x (goal <= 1.2x); scores {'equal' if scores['ipynb'] == scores['py'] else 'DIFFER'}")
        if args.execute:
            seconds = execute_notebook(folders["ipynb"])
            print(f"executing sheet10.ipynb itself (training included): {seconds:.1f} s")
    sys.exit(0 if ratio <= 1.2 and scores["ipynb"] == scores["py"] else 1)


if __name__ == "__main__":
    main()
