"""The SR-family benchmark end to end on its cheapest row, 2 timed calls: the worker processes,
the round protocol, the accuracy check against onnxruntime and the report files."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytest.importorskip("MNN")
pytest.importorskip("matplotlib")


@pytest.mark.slow
def test_one_row_through_every_runtime(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bench.sr_family", "--only", "^2-path @ 64x3x48x48$",
                        "--rounds", "2", "--results", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = (tmp_path / "sr_family.partial.md").read_text()
    assert (tmp_path / "sr_family.partial.png").stat().st_size > 0
    row = next(line for line in report.splitlines() if line.startswith("| 2-path | 64x3x48x48 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    latencies = [float(c) for c in cells[3:6]]  # dydca, onnxruntime, MNN: each ran and was timed
    assert all(t > 0 for t in latencies), row
    errors = [float(e) for e in cells[12].split(" / ")]  # dydca and MNN against onnxruntime
    assert all(e <= 1e-4 for e in errors), row
    assert re.search(r"the peak is (numpy|onnxruntime)'s", report), report[:600]
