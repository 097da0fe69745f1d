"""bench.instructions: a storm's instruction count under callgrind, as a smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import program

pytestmark = pytest.mark.once  # the benchmark's own servers, not the test database

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_a_small_storm_is_answered_and_its_instructions_counted():
    program("valgrind", "valgrind")
    completed = subprocess.run(
        [sys.executable, "-m", "bench.instructions", "--charge-points", "10"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    row = json.loads(completed.stdout.splitlines()[-1])
    assert row["answered"] == 10
    assert row["errors"] == []
    # Connect, BootNotification and StatusNotification cost about 2.5 million
    # instructions a charge point here; counting only start-up would be far more,
    # counting nothing far less.
    assert 500_000 < row["instructions_per_charge_point"] < 50_000_000
