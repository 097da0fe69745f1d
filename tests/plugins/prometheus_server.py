"""A throwaway Prometheus server (the Debian package's binary) for tests.

It gets a temporary configuration and data directory, listens on a free port of
127.0.0.1, scrapes the given targets every second and evaluates the example alert
rules every second.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import PROJECT_DIR, free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
RULES = PROJECT_DIR / "examples" / "prometheus" / "levity-alerts.yml"


class PrometheusServer:
    def __init__(self, workdir: Path, targets: list[str]):
        self.port = free_port()
        self.workdir = workdir
        self.targets = targets
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        shutil.copy(RULES, self.workdir / RULES.name)
        targets = ", ".join(f'"{t}"' for t in self.targets)
        config = self.workdir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES.name}\n"
            "scrape_configs:\n  - job_name: levity\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
        )
        self._log = open(self.workdir / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"prometheus not ready:\n{self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self._log.close()

    def log(self) -> str:
        return (self.workdir / "prometheus.log").read_text(errors="replace")

    async def api(self, path: str, **params: Any) -> Any:
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            response = await http.get(f"/api/v1/{path}", params=params)
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    async def query(self, promql: str) -> list[dict]:
        return (await self.api("query", query=promql))["result"]

    async def value(self, promql: str, expected: float, timeout: float = 15) -> float:
        """The query's single value, once it equals ``expected`` (scrapes take a moment)."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            result = await self.query(promql)
            if len(result) == 1:
                seen = float(result[0]["value"][1])
                if seen == expected:
                    return seen
            await asyncio.sleep(0.25)
        raise AssertionError(f"{promql} = {seen}, expected {expected}")
