"""The cs446-hw2 reference training script (parts c/d): a short run makes the plot and the numbers."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_short_run_writes_the_error_plot_and_numbers(tmp_path):
    png, numbers = tmp_path / "errors.png", tmp_path / "errors.json"
    proc = subprocess.run([sys.executable, "train.py", "--epochs", "3", "--channels", "1,4",
                           "--out", str(png), "--json", str(numbers)],
                          cwd=ROOT / "reference" / "cs446-hw2", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    data = json.loads(numbers.read_text())
    runs = data.get("results", data)
    for C in ("1", "4"):
        run = runs[C]
        assert len(run["train_errors"]) == len(run["test_errors"]) == 3
        assert all(0.0 <= e <= 1.0 for e in run["train_errors"] + run["test_errors"])
    assert runs["4"]["n_params"] == 18 * 16 + 25 * 4 + 10
    assert "final train err" in proc.stdout
