"""The programs the tests run for real (Redis, PostgreSQL, Prometheus, valgrind...).

``scripts/test`` installs them (scripts/provision). Where one is still missing, a
test that needs it is skipped with one line naming the command that enables it;
under ``CI=true`` it fails instead, since CI must run every test. Loaded as a
pytest plugin (tests/conftest.py), this module also reports any other skip as a
failure under ``CI=true``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

CI = os.environ.get("CI", "").lower() == "true"


def unavailable(reason: str) -> NoReturn:
    """Skip the test for ``reason``; under CI=true, fail it."""
    if CI:
        pytest.fail(f"{reason}; CI=true skips nothing", pytrace=False)
    pytest.skip(reason)


def program(name: str, package: str) -> str:
    """The path of an installed program (also found in /usr/sbin), or the test is skipped."""
    found = shutil.which(name)
    if found is None and os.access(Path("/usr/sbin") / name, os.X_OK):
        found = str(Path("/usr/sbin") / name)
    if found is None:
        unavailable(
            f"{name} is not installed (enable: sudo apt-get install {package}, or run ./scripts/test as root)"
        )
    return found


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true nothing may be skipped: a skip is reported as a failure."""
    report = yield
    if CI and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which runs every test: {reason}"
    return report
