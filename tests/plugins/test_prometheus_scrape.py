"""A real Prometheus server scrapes a real Levity; the examples run on it."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from tests.conftest import PROJECT_DIR, eventually
from tests.plugins.conftest import plugins_env
from tests.plugins.metrics_page import scrape
from tests.plugins.prometheus_server import RULES, PrometheusServer, promtool
from tests.plugins.test_prometheus_metrics import charge

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = PROJECT_DIR / "examples" / "prometheus"


@pytest.fixture(scope="module")
def levity(module_daphne):
    return module_daphne(LEVITY_PLUGINS=plugins_env({"class": "plugins.PrometheusMetricsPlugin"}))


@pytest.fixture(scope="module")
def prometheus(levity, tmp_path_factory):
    server = PrometheusServer(tmp_path_factory.mktemp("prometheus"), [f"127.0.0.1:{levity.port}"])
    server.start()
    yield server
    server.stop()


def example_queries() -> list[str]:
    """Every PromQL of the examples README and of the Grafana dashboard, runnable as is."""
    readme = (EXAMPLES / "README.md").read_text()
    queries = re.findall(r"```promql\n(.*?)\n```", readme, re.S)
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queries.append(target["expr"].replace("$__rate_interval", "1m").replace('"$cp_id"', '".*"'))
    return queries


async def test_prometheus_scrapes_the_values_of_a_charging_session(prometheus, levity, connect, cp_id):
    client = await connect(cp_id, server=levity)
    await client.boot()
    transaction_id = await charge(client, meter_start=2000, meter_now_kwh="2.5")
    cp, connector = f'cp_id="{cp_id}"', f'cp_id="{cp_id}",connector_id="1"'

    await prometheus.value(f"ocpp_cp_connected{{{cp}}}", 1)
    await prometheus.value(f"ocpp_tx_active{{{connector}}}", 1)
    await prometheus.value(f"ocpp_tx_energy_wh{{{connector}}}", 500)
    await prometheus.value(f"ocpp_cp_current_a{{{connector}}}", 16.2)
    await prometheus.value(f'ocpp_connector_status{{{connector},status="Charging"}}', 1)

    await client.stop_transaction(transaction_id, 9000)
    await client.close()

    await prometheus.value(f"ocpp_cp_energy_total_wh{{{cp}}}", 7000)
    await prometheus.value(f"ocpp_tx_active{{{connector}}}", 0)
    await prometheus.value(f"ocpp_cp_connected{{{cp}}}", 0)
    await prometheus.value("ocpp_central_up", 1)
    for action in ("BootNotification", "StartTransaction", "MeterValues", "StopTransaction"):
        [handled] = await prometheus.query(f'ocpp_msg_handling_seconds_count{{action="{action}"}}')
        assert float(handled["value"][1]) >= 1


async def test_every_example_query_runs_on_prometheus_with_exposed_metrics(
    prometheus, levity, connect, raw_ws, cp_id
):
    client = await connect(cp_id, server=levity)
    await client.boot()
    await charge(client)
    async with raw_ws(f"{cp_id}-raw", server=levity) as raw:  # for the error series
        await raw.exchange([2, "1", "Heartbeat", {"unexpected": True}])
    page = await scrape(levity.http_url + "/metrics")
    exposed = set(re.findall(r"^# TYPE (\S+)", page.text, re.M))
    queries = example_queries()
    assert len(queries) > 20

    for query in queries:
        await prometheus.query(query)  # raises unless Prometheus accepts it
        used = set(re.findall(r"\b((?:ocpp|levity)_[a-z_]+)", query))
        used = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
        assert used <= exposed, f"{query}: {used - exposed} not exposed"


async def test_example_alert_rules_load_and_evaluate_on_prometheus(prometheus):
    async def evaluated() -> list[dict]:
        groups = (await prometheus.api("rules"))["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        assert rules and all(rule["health"] == "ok" for rule in rules), json.dumps(rules, indent=1)
        return rules

    rules = await eventually(evaluated, timeout=15, interval=0.5)

    assert {rule["name"] for rule in rules} == {
        "LevityDown",
        "OCPPChargePointOffline",
        "OCPPNoHeartbeat",
        "OCPPErrorBurst",
        "OCPPConnectorFaulted",
        "OCPPSlowMessageHandling",
    }


def test_example_rules_pass_promtool_check_rules():
    checked = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_example_scrape_config_passes_promtool_check_config():
    checked = subprocess.run(
        [promtool(), "check", "config", str(EXAMPLES / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
