"""Size of the autograder Docker image built by docker/grade.sh (tests/test_docker.py builds it).

    python bench/bench_docker.py
"""
from __future__ import annotations

import subprocess


def main() -> None:
    out = subprocess.run(["docker", "images", "mlgrade-autograder", "--format", "{{.Tag}} {{.Size}} {{.CreatedSince}}"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print("no Docker engine:", out.stderr.strip())
        return
    for line in out.stdout.splitlines():
        tag = line.split()[0]
        size = int(subprocess.run(["docker", "image", "inspect", "-f", "{{.Size}}", f"mlgrade-autograder:{tag}"],
                                  capture_output=True, text=True).stdout)
        print(f"mlgrade-autograder:{tag}: {size / 1e9:.2f} GB ({size / 2**30:.2f} GiB), goal <= 1.5 GB  [{line}]")


if __name__ == "__main__":
    main()
