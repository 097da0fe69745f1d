"""scripts/provision: what the test command installs on a fresh machine, and when.

A fresh machine is simulated in a mount namespace of its own (``unshare``, as root)
where /usr/sbin and /usr/lib/postgresql are empty and PATH holds only stand-ins for
``id`` and ``apt-get`` that record how they were called.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR
from tests.services import unavailable

pytestmark = pytest.mark.once  # no database at all

PROVISION = PROJECT_DIR / "scripts" / "provision"
PACKAGES = ["redis-server", "postgresql", "prometheus", "nginx", "openssl", "valgrind"]


def stand_ins(directory: Path, uid: int, apt_get_exit: int = 0) -> Path:
    bin_dir = directory / "bin"
    bin_dir.mkdir()
    (bin_dir / "id").write_text(f"#!/bin/bash\necho {uid}\n")
    (bin_dir / "apt-get").write_text(
        f'#!/bin/bash\necho "$*" >> {directory / "apt-get.log"}\nexit {apt_get_exit}\n'
    )
    for program in bin_dir.iterdir():
        program.chmod(0o755)
    return bin_dir


def provision(
    directory: Path, *, uid: int, fresh: bool, apt_get_exit: int = 0
) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    assert bash is not None
    bin_dir = stand_ins(directory, uid, apt_get_exit)
    env = {"PATH": str(bin_dir) if fresh else f"{bin_dir}:{os.environ['PATH']}"}
    command = [bash, str(PROVISION)]
    if fresh:
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            unavailable("simulating a fresh machine needs root and unshare (util-linux)")
        empty = directory / "empty"
        empty.mkdir()
        mount, unshare = shutil.which("mount"), shutil.which("unshare")
        assert unshare is not None  # checked above
        hide = " && ".join(
            f"{mount} --bind {empty} {path}"
            for path in ("/usr/sbin", "/usr/lib/postgresql")
            if Path(path).is_dir()
        )
        command = [unshare, "-m", bash, "-c", f"{hide} && exec {bash} {PROVISION}"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def apt_get_calls(directory: Path) -> list[str]:
    log = directory / "apt-get.log"
    return log.read_text().splitlines() if log.exists() else []


def test_on_a_fresh_machine_as_root_every_server_is_installed_with_one_apt_get(tmp_path):
    result = provision(tmp_path, uid=0, fresh=True)
    assert result.returncode == 0, result.stderr
    assert apt_get_calls(tmp_path) == [
        "update -qq",
        "install -y -qq --no-install-recommends " + " ".join(PACKAGES),
    ]


def test_on_a_fresh_machine_not_as_root_each_missing_package_is_one_line(tmp_path):
    result = provision(tmp_path, uid=1000, fresh=True)
    assert result.returncode == 0, result.stderr
    assert apt_get_calls(tmp_path) == []
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"scripts/provision: {package} is not installed, so the tests that need it are skipped "
        f"(enable them: sudo apt-get install {package}, or run ./scripts/test as root)"
        for package in PACKAGES
    ]


def test_when_apt_get_fails_the_tests_still_run_and_say_what_is_missing(tmp_path):
    result = provision(tmp_path, uid=0, fresh=True, apt_get_exit=100)
    assert result.returncode == 0, result.stderr
    assert apt_get_calls(tmp_path) == ["update -qq"]
    assert result.stderr.strip().splitlines()[-1] == (
        "scripts/provision: apt-get could not install " + " ".join(PACKAGES) + " (see above)"
    )


def test_with_everything_installed_nothing_is_fetched(tmp_path):
    for program in ("redis-server", "prometheus", "promtool", "openssl", "valgrind"):
        if shutil.which(program) is None:
            unavailable(f"{program} is not installed here (./scripts/test as root installs it)")
    result = provision(tmp_path, uid=0, fresh=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert apt_get_calls(tmp_path) == []
