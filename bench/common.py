"""Shared helpers of the benchmarks: timing a command, generating a class, the machine."""
from __future__ import annotations

import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def wall(cmd: list[str], repeat: int = 3, **kw) -> float:
    """Best wall time of ``repeat`` runs (seconds)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        best = min(best, time.perf_counter() - start)
    return best


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch

    return (f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}, Python {platform.python_version()}, torch {torch.__version__}, "
            f"euid {os.geteuid()}")


def make_class(folder: Path, n: int = 200, seed: int = 0) -> dict[str, int]:
    """n ml-hw6 submissions: ~40% reference, ~45% mutants, ~15% broken (tests/broken or made up)."""
    from mlgrade.course import open_course
    from mlgrade.validate import apply_mutant, load_mutants

    a = open_course(ROOT).get("ml-hw6")
    mutants = load_mutants(a.mutants_dir)
    broken_dir = ROOT / "tests" / "broken"
    broken = sorted(p for p in broken_dir.iterdir() if p.is_dir()) if broken_dir.is_dir() else []
    rng = random.Random(seed)
    kinds = {"reference": 0, "mutant": 0, "broken": 0}
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i in range(n):
        target = folder / f"student{i:03d}"
        r = rng.random()
        if r < 0.40:
            target.mkdir()
            shutil.copy(a.reference_dir / "hw6.py", target / "hw6.py")
            kinds["reference"] += 1
        elif r < 0.85:
            apply_mutant(rng.choice(mutants), a.reference_dir, target)
            kinds["mutant"] += 1
        else:
            if broken and rng.random() < 0.7:
                shutil.copytree(rng.choice(broken), target)
            else:
                target.mkdir()
                (target / "hw6.py").write_text("def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    return x[\n")
            kinds["broken"] += 1
    return kinds


def mlgrade_cmd() -> list[str]:
    exe = shutil.which("mlgrade")
    return [exe] if exe else [sys.executable, "-m", "mlgrade.cli"]
