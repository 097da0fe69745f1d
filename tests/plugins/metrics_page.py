"""Reading a /metrics page (Prometheus text format) in tests."""

from __future__ import annotations

import subprocess

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.plugins.prometheus_server import promtool


class MetricsPage:
    def __init__(self, text: str):
        self.text = text
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    def get(self, name: str, **labels: str) -> float | None:
        """The value of the one sample with this name and these labels (others ignored)."""
        found = [
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == str(v) for k, v in labels.items())
        ]
        assert len(found) <= 1, f"{len(found)} samples of {name}{labels}"
        return found[0] if found else None

    def total(self, name: str, **labels: str) -> float:
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == str(v) for k, v in labels.items())
        )

    def with_label(self, **labels: str) -> list:
        return [s for s in self.samples if all(s.labels.get(k) == str(v) for k, v in labels.items())]


async def scrape(url: str) -> MetricsPage:
    from tests.conftest import METRICS_TOKEN

    async with httpx.AsyncClient(timeout=20) as http:
        response = await http.get(url, headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert response.status_code == 200, response.text
    return MetricsPage(response.text)


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool(), "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
