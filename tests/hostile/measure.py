"""Grade every case of the hostile corpus with the real ml-hw6 graders and print a table.

    python tests/hostile/measure.py [CASE ...]        # as root, or as an ordinary user

For each case: the score, the size of results.json, the grading process's peak RSS and the
wall time, from a fresh `mlgrade run` process each (what an instructor runs). Cases are
staged as tests/test_hostile.py and tests/test_hostile_values.py stage them: the
wrong-on-purpose stubs in front of the attack (except the everywhere-hostile ones), or a
symbolic link named hw6.py where the case holds a LINK file.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EVERYWHERE = {"hang_everywhere", "exit_everywhere", "memory_everywhere"}
RUN = ("import resource, sys\nfrom mlgrade.cli import main\ncode = main(sys.argv[1:])\n"
       "print('PEAK_RSS_MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\nsys.exit(code)\n")


def stage(case: Path, folder: Path) -> Path:
    submission = folder / case.name
    submission.mkdir(parents=True)
    link = case / "LINK"
    if link.is_file():
        fifo = folder / f"{case.name}.pipe"
        os.mkfifo(fifo)
        target = link.read_text().strip().format(repo=REPO, repo_from_cwd=os.path.relpath(REPO), fifo=fifo)
        (submission / "hw6.py").symlink_to(target)
        return submission
    for extra in case.iterdir():
        if extra.name != "hw6.py" and extra.is_file():
            (submission / extra.name).write_bytes(extra.read_bytes())
    if not (case / "hw6.py").is_file():  # a notebook case: hw6.ipynb, copied above, is the whole submission
        return submission
    attack = (case / "hw6.py").read_text()
    stubs = "" if case.name in EVERYWHERE else (HERE / "wrong_stubs.py").read_text() + "\n\n"
    (submission / "hw6.py").write_text(stubs + attack)
    return submission


def measure(case: Path, folder: Path) -> dict:
    submission = stage(case, folder)
    results = folder / f"{case.name}.json"
    start = time.monotonic()
    run = subprocess.run([sys.executable, "-c", RUN, "run", "ml-hw6", str(submission), "--results", str(results)],
                         capture_output=True, text=True, timeout=900, cwd=folder,
                         # PYTHONHASHSEED=0: as the installed command runs (mlgrade.launch), so that
                         # the fork server is a fork of this process as it is on Gradescope
                         env={**os.environ, "MLGRADE_COURSE": str(REPO), "PYTHONHASHSEED": "0"})
    seconds = time.monotonic() - start
    peak = next((float(line.split()[1]) for line in run.stdout.splitlines() if line.startswith("PEAK_RSS_MB")), 0.0)
    row = {"case": case.name, "exit": run.returncode, "seconds": seconds, "peak_mb": peak, "bytes": 0, "score": None}
    if results.is_file():
        data = results.read_bytes()
        parsed = json.loads(data)
        row.update(bytes=len(data), score=parsed["score"], max=sum(t["max_score"] for t in parsed["tests"]),
                   no_score="extra_data" in parsed)
    return row


def main(names: list[str]) -> None:
    cases = [HERE / n for n in names] if names else sorted(p for p in HERE.iterdir() if p.is_dir())
    user = os.environ.get("USER") or str(os.getuid())
    print(f"| case ({'root' if os.geteuid() == 0 else 'not root: ' + user}) | score | results.json | grading process peak RSS | wall |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="mlgrade-measure-", dir="/var/tmp") as tmp:
        os.chmod(tmp, 0o755)
        for case in cases:
            r = measure(case, Path(tmp))
            score = "no results.json" if r["score"] is None else (
                "no score (engine failure)" if r.get("no_score") else f"{r['score']:g}/{r['max']:g}")
            print(f"| {r['case']} | {score} | {r['bytes'] / 1024:.1f} KB | {r['peak_mb']:.0f} MB | {r['seconds']:.1f} s |",
                  flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
