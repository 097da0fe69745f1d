"""bench/soak.py at its smallest: a few charge points, seconds of charging, faults injected."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR


@pytest.mark.once
def test_soak_smoke_stores_every_acknowledged_message_through_injected_faults():
    run = subprocess.run(
        [sys.executable, "-m", "bench.soak", "--quick"],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((PROJECT_DIR / "bench" / "results" / "tmp" / "soak.json").read_text())
    assert report["faults"], "no fault was injected"
    assert report["messages_acknowledged"] > 0
    assert (report["lost"], report["half_written"]) == (0, 0)
    assert report["wh_stored"] == report["wh_acknowledged"] > 0
    assert report["transactions_stored"] >= report["transactions_acknowledged"]
