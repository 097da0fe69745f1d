"""bench.data_growth's smoke run: a few thousand rows, every figure present and sane.

The real run (10 million rows) is not part of CI; this checks that it keeps working.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.data_growth import QUERIES
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.once  # the benchmark's own database, not the test database


@pytest.mark.timeout(300)
def test_data_growth_reports_insert_and_query_times_as_the_table_grows(postgres_server, tmp_path):
    url = postgres_server.create_database("levity_data_growth_smoke")
    completed = subprocess.run(
        [
            sys.executable, "-m", "bench.data_growth", "--rows", "6000", "--months", "3",
            "--charge-points", "10", "--samples-per-transaction", "30",
            "--database-url", url, "--out", str(tmp_path),
        ],
        cwd=PROJECT_DIR, capture_output=True, text=True, timeout=280,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    results = json.loads((tmp_path / "data_growth.json").read_text())
    assert [step["rows"] for step in results["steps"]] == [600, 3000, 6000]
    for step in results["steps"]:
        assert step["partitions"] >= 4  # three months back, this one, the default
        assert step["insert"]["rows_per_batch"] == 500 and step["insert"]["rows_per_s"] > 0
        assert 0 < step["insert"]["batch_ms_p50"] <= step["insert"]["batch_ms_max"]
        assert set(step["queries"]) == set(QUERIES)
        assert all(0 < q["ms_p50"] <= q["ms_max"] for q in step["queries"].values())
    drop = results["drop_oldest_month"]
    assert drop["partition"].startswith("transactions_metervalue_") and drop["ms"] > 0
    delete = results["delete_next_month_in_batches"]
    assert delete["partition"] > drop["partition"] and delete["rows"] > 0 and delete["s"] > 0
    assert results["meta"]["commit"] and results["meta"]["rows"] == 6000
    summary = (tmp_path / "data_growth.md").read_text()
    assert "| 6,000 |" in summary and "Dropping the oldest month" in summary
