"""Under CI=true (as .ci/run runs the test command) a skipped test fails instead."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.once  # no database at all

SAMPLE = """
import pytest
from tests.services import program

def test_skipped_by_a_marker_reason():
    pytest.skip("the frobnicator is not installed")

def test_needs_a_program_that_is_missing():
    program("levity-no-such-program", "levity-no-such-package")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False

def test_passes():
    pass
"""


def run_sample(tmp_path, ci: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "DJANGO_SETTINGS_MODULE")}
    env.update(CI=ci, PYTHONPATH=str(PROJECT_DIR))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.services", "-p", "no:django", "-p", "no:cacheprovider",
         "-rfs", "-q", str(tmp_path / "test_sample.py")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_under_ci_every_skip_is_a_failure_naming_its_reason(tmp_path):
    result = run_sample(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    assert "2 failed, 1 passed, 1 xfailed" in result.stdout
    assert (
        "skipped under CI=true, which runs every test: Skipped: the frobnicator is not installed"
        in result.stdout
    )
    assert "levity-no-such-program is not installed (enable: sudo apt-get install levity-no-such-package" in (
        result.stdout
    )
    assert "CI=true skips nothing" in result.stdout


def test_elsewhere_a_missing_program_skips_with_one_line_naming_the_command(tmp_path):
    result = run_sample(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in result.stdout
    assert (
        "levity-no-such-program is not installed (enable: sudo apt-get install levity-no-such-package, "
        "or run ./scripts/test as root)"
    ) in result.stdout
