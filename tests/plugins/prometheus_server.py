"""A throwaway Prometheus server (the Debian package's binary) for tests.

It gets a temporary configuration and data directory, listens on a free port of
127.0.0.1, scrapes the given targets every second and evaluates the example alert
rules every second.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx

from bench.processes import ServerProcess, free_port
from tests.conftest import METRICS_TOKEN, PROJECT_DIR, eventually
from tests.services import program

RULES = PROJECT_DIR / "examples" / "prometheus" / "levity-alerts.yml"


class PrometheusServer(ServerProcess):
    def __init__(self, workdir: Path, targets: list[str]):
        port = free_port()
        argv = [
            program("prometheus", "prometheus"),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ]
        super().__init__("prometheus", argv, port, workdir / "prometheus.log")
        self.workdir = workdir
        self.targets = targets

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> PrometheusServer:
        shutil.copy(RULES, self.workdir / RULES.name)
        targets = ", ".join(f'"{t}"' for t in self.targets)
        (self.workdir / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            f"rule_files:\n  - {RULES.name}\n"
            "scrape_configs:\n  - job_name: levity\n"
            f"    static_configs:\n      - targets: [{targets}]\n"
            f"    authorization:\n      credentials: {METRICS_TOKEN}\n"
        )
        return super().start(timeout)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

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

        async def equal() -> bool:
            result = await self.query(promql)
            assert len(result) == 1, f"{promql} = {result}, expected {expected}"
            seen = float(result[0]["value"][1])
            assert seen == expected, f"{promql} = {seen}, expected {expected}"
            return True

        await eventually(equal, timeout=timeout, interval=0.25)
        return expected


def promtool() -> str:
    return program("promtool", "prometheus")
