"""PrometheusMetricsPlugin over real daphne: /metrics content, restarts, deletions, processes."""

from __future__ import annotations

import httpx
import pytest
import websockets
from ocpp.v16 import call

from chargepoints.models import ChargePoint
from tests.conftest import eventually, free_port
from tests.ocpp_client import OCPPClient, now_iso
from tests.plugins.conftest import plugins_env
from tests.plugins.metrics_page import promtool_check_metrics, scrape

pytestmark = pytest.mark.django_db(transaction=True)

METRICS_PLUGIN = plugins_env({"class": "plugins.PrometheusMetricsPlugin"})


class MetricsServer:
    def __init__(self, server, metrics_port: int):
        self.server = server
        self.metrics_port = metrics_port

    @property
    def metrics_url(self) -> str:
        return self.server.http_url + "/metrics"

    @property
    def metrics_port_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    async def scrape(self):
        return await scrape(self.metrics_url)


@pytest.fixture(scope="module")
def metrics_server(module_daphne):
    port = free_port()
    server = module_daphne(
        LEVITY_PLUGINS=METRICS_PLUGIN,
        LEVITY_METRICS_PORT=str(port),
        LEVITY_METRICS_ADDRESS="127.0.0.1",
    )
    return MetricsServer(server, port)


async def charge(client, connector_id: int = 1, meter_start: int = 0, meter_now_kwh: str = "1.5"):
    """Start a transaction and send one sample of energy and 3-phase current."""
    started = await client.start_transaction(connector_id, "NOBODY", meter_start)
    await client.status(connector_id, "Charging")
    sampled = [
        {"value": meter_now_kwh, "unit": "kWh", "measurand": "Energy.Active.Import.Register"},
        {"value": "15.5", "unit": "A", "measurand": "Current.Import", "phase": "L1"},
        {"value": "16.2", "unit": "A", "measurand": "Current.Import", "phase": "L2"},
        {"value": "15.9", "unit": "A", "measurand": "Current.Import", "phase": "L3"},
    ]
    await client.call(
        call.MeterValues(
            connector_id=connector_id,
            transaction_id=started.transaction_id,
            meter_value=[{"timestamp": now_iso(), "sampled_value": sampled}],
        )
    )
    return started.transaction_id


async def test_metrics_are_not_served_unless_turned_on(daphne_server):
    async with httpx.AsyncClient() as http:
        response = await http.get(daphne_server.http_url + "/metrics")
    assert response.status_code == 404


async def test_metrics_page_passes_promtool_check_metrics(metrics_server, connect, raw_ws, cp_id):
    client = await connect(cp_id, server=metrics_server.server)
    await client.boot()
    await charge(client)
    async with raw_ws(f"{cp_id}-raw", server=metrics_server.server) as raw:
        await raw.exchange([2, "1", "NoSuchAction", {}])

    page = await metrics_server.scrape()

    checked = promtool_check_metrics(page.text)
    assert (checked.returncode, checked.stdout, checked.stderr) == (0, "", "")


async def test_metrics_port_serves_the_same_metrics(metrics_server, connect, cp_id):
    client = await connect(cp_id, server=metrics_server.server)
    await client.boot()

    page = await scrape(metrics_server.metrics_port_url)

    assert page.get("ocpp_central_up") == 1
    assert page.get("ocpp_cp_connected", cp_id=cp_id) == 1
    assert page.get("ocpp_boots_total") >= 1


async def test_a_charge_point_is_connected_until_it_disconnects(metrics_server, connect, cp_id):
    client = await connect(cp_id, server=metrics_server.server)
    await client.boot()
    assert (await metrics_server.scrape()).get("ocpp_cp_connected", cp_id=cp_id) == 1

    await client.close()

    async def disconnected() -> bool:
        return (await metrics_server.scrape()).get("ocpp_cp_connected", cp_id=cp_id) == 0

    await eventually(disconnected)


async def test_messages_are_counted_and_timed_by_action(metrics_server, connect, cp_id):
    client = await connect(cp_id, server=metrics_server.server)
    before = await metrics_server.scrape()

    for _ in range(3):
        await client.call(call.Heartbeat())

    after = await metrics_server.scrape()
    count = "ocpp_msg_handling_seconds_count"
    assert (
        after.get("ocpp_messages_total", action="Heartbeat")
        - before.get("ocpp_messages_total", action="Heartbeat")
        == 3
    )
    assert after.get(count, action="Heartbeat") - before.get(count, action="Heartbeat") == 3
    assert after.get("ocpp_msg_handling_seconds_bucket", action="Heartbeat", le="+Inf") == (
        after.get(count, action="Heartbeat")
    )
    took = after.get("ocpp_msg_handling_seconds_sum", action="Heartbeat") - before.get(
        "ocpp_msg_handling_seconds_sum", action="Heartbeat"
    )
    assert 0 < took < 1


async def test_callerrors_are_counted_by_action_and_error_code(metrics_server, raw_ws, cp_id):
    before = await metrics_server.scrape()

    async with raw_ws(cp_id, server=metrics_server.server) as raw:
        assert (await raw.exchange([2, "a", "StartTransaction", {"connectorId": 1}]))[2] == ("ProtocolError")
        assert (await raw.exchange([2, "b", "Frobnicate", {}]))[2] == "NotImplemented"
        assert (await raw.exchange("not json"))[2] == "FormationViolation"

    after = await metrics_server.scrape()

    def errors(page, action, code):
        return page.get("ocpp_msg_errors_total", action=action, error_code=code) or 0

    assert (
        errors(after, "StartTransaction", "ProtocolError")
        - errors(before, "StartTransaction", "ProtocolError")
        == 1
    )
    # Action names a charge point makes up are counted as "Unknown": labels stay bounded.
    assert errors(after, "Unknown", "NotImplemented") - errors(before, "Unknown", "NotImplemented") == 1
    # So is a frame that is not a message at all.
    assert (
        errors(after, "Unknown", "FormationViolation") - errors(before, "Unknown", "FormationViolation") == 1
    )
    assert not after.with_label(action="Frobnicate")


async def test_boots_and_status_notifications_are_counted(metrics_server, connect, cp_id):
    client = await connect(cp_id, server=metrics_server.server)
    before = await metrics_server.scrape()

    await client.boot()
    await client.status(1, "Faulted", error_code="GroundFailure")

    after = await metrics_server.scrape()
    assert after.get("ocpp_boots_total") - before.get("ocpp_boots_total") == 1
    faults = {"status": "Faulted", "error_code": "GroundFailure"}
    assert (
        after.get("ocpp_status_notifications_total", **faults)
        - (before.get("ocpp_status_notifications_total", **faults) or 0)
        == 1
    )
    assert after.get("ocpp_connector_status", cp_id=cp_id, connector_id="1", **faults) == 1


async def test_security_events_are_counted_once_by_type(metrics_server, connect, cp_id):
    client = await connect(cp_id, server=metrics_server.server)
    before = await metrics_server.scrape()
    tamper = call.SecurityEventNotification(
        type="TamperDetectionActivated", timestamp=now_iso(), tech_info="lid"
    )
    await client.call(tamper)
    await client.call(tamper)  # resent (its answer lost): the same event
    await client.call(
        call.SecurityEventNotification(type="VendorDoorOpened", timestamp=now_iso(), tech_info="door")
    )

    async def counted():
        after = await metrics_server.scrape()
        tampering = after.get("ocpp_security_events_total", type="TamperDetectionActivated") - before.get(
            "ocpp_security_events_total", type="TamperDetectionActivated"
        )
        other = after.get("ocpp_security_events_total", type="Other") - before.get(
            "ocpp_security_events_total", type="Other"
        )
        assert (tampering, other) == (1, 1)
        return True

    await eventually(counted)


async def test_refused_connections_are_counted_by_kind(metrics_server, cp_id):
    from asgiref.sync import sync_to_async

    from chargepoints import security
    from tests.chargepoints.pki import basic_auth

    await sync_to_async(security.set_security_profile)(cp_id, 1, create=True)
    before = await metrics_server.scrape()
    server = metrics_server.server
    with pytest.raises(websockets.InvalidStatus):
        await OCPPClient.open(
            server.ws_url(cp_id), additional_headers=basic_auth(cp_id, "wrong"), open_timeout=60
        )
    with pytest.raises(websockets.InvalidStatus):
        await OCPPClient.open(server.ws_url("not%20valid"))

    async def counted():
        after = await metrics_server.scrape()
        counts = {
            kind: after.get("ocpp_connections_refused_total", kind=kind)
            - before.get("ocpp_connections_refused_total", kind=kind)
            for kind in ("authentication", "invalid", "policy")
        }
        assert counts == {"authentication": 1, "invalid": 1, "policy": 0}
        return True

    await eventually(counted)


async def test_a_charging_session_shows_in_transaction_energy_and_current(metrics_server, connect, cp_id):
    client = await connect(cp_id, server=metrics_server.server)
    await client.boot()
    transaction_id = await charge(client, meter_start=1000, meter_now_kwh="1.5")

    page = await metrics_server.scrape()
    connector = {"cp_id": cp_id, "connector_id": "1"}
    assert page.get("ocpp_tx_active", **connector) == 1
    assert page.get("ocpp_tx_energy_wh", **connector) == 500
    assert page.get("ocpp_cp_current_a", **connector) == 16.2  # the highest phase
    charging = {"status": "Charging", "error_code": "NoError"}
    assert page.get("ocpp_connector_status", **charging, **connector) == 1
    assert page.get("ocpp_cp_energy_total_wh", cp_id=cp_id) == 0

    await client.stop_transaction(transaction_id, 8750)
    await client.status(1, "Available")

    page = await metrics_server.scrape()
    assert page.get("ocpp_tx_active", **connector) == 0
    assert page.get("ocpp_cp_current_a", **connector) == 0
    assert page.get("ocpp_tx_energy_wh", **connector) is None
    assert page.get("ocpp_cp_energy_total_wh", cp_id=cp_id) == 7750
    available = {"status": "Available", "error_code": "NoError"}
    assert page.get("ocpp_connector_status", **available, **connector) == 1
    assert page.get("ocpp_connector_status", status="Charging", **connector) is None


async def test_values_are_right_right_after_a_restart(start_daphne, connect, cp_id):
    first = start_daphne(LEVITY_PLUGINS=METRICS_PLUGIN)
    client = await connect(cp_id, server=first)
    await client.boot()
    finished = await client.start_transaction(1, "NOBODY", 0)
    await client.stop_transaction(finished.transaction_id, 1200)
    await charge(client, connector_id=2)  # still charging when the server restarts
    await client.close()
    await first.wait_for_log(f"{cp_id} disconnected")
    first.stop()

    second = start_daphne(LEVITY_PLUGINS=METRICS_PLUGIN)
    page = await scrape(second.http_url + "/metrics")  # no charge point connected yet

    assert page.get("ocpp_cp_connected", cp_id=cp_id) == 0
    assert page.get("ocpp_cp_energy_total_wh", cp_id=cp_id) == 1200
    assert page.get("ocpp_tx_active", cp_id=cp_id, connector_id="2") == 1
    assert page.get("ocpp_tx_energy_wh", cp_id=cp_id, connector_id="2") == 1500
    assert page.get("ocpp_cp_current_a", cp_id=cp_id, connector_id="2") == 16.2
    assert page.get("ocpp_cp_last_boot_timestamp_seconds", cp_id=cp_id) > 0


async def test_a_charge_point_deleted_from_the_database_has_no_series(metrics_server, connect, cp_id):
    client = await connect(cp_id, server=metrics_server.server)
    await client.boot()
    await client.status(1, "Available")
    await client.close()
    await metrics_server.server.wait_for_log(f"{cp_id} disconnected")
    assert (await metrics_server.scrape()).with_label(cp_id=cp_id)

    await ChargePoint.objects.filter(charge_point_id=cp_id).adelete()

    assert not (await metrics_server.scrape()).with_label(cp_id=cp_id)


async def test_several_processes_report_the_whole_server(start_daphne, connect, cp_id, tmp_path):
    shared = {
        "LEVITY_PLUGINS": METRICS_PLUGIN,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "LEVITY_METRICS_PORT": str(free_port()),
        "LEVITY_METRICS_ADDRESS": "127.0.0.1",
    }
    first, second = start_daphne(**shared), start_daphne(**shared)
    one = await connect(f"{cp_id}-1", server=first)
    two = await connect(f"{cp_id}-2", server=second)
    for _ in range(3):
        await one.call(call.Heartbeat())
    for _ in range(2):
        await two.call(call.Heartbeat())

    pages = [
        await scrape(first.http_url + "/metrics"),
        await scrape(second.http_url + "/metrics"),
        # Only one process could take the metrics port; it serves the same totals.
        await scrape(f"http://127.0.0.1:{shared['LEVITY_METRICS_PORT']}/metrics"),
    ]
    for page in pages:
        assert page.get("ocpp_messages_total", action="Heartbeat") == 5
        assert page.get("ocpp_msg_handling_seconds_count", action="Heartbeat") == 5
        assert page.get("ocpp_connections_total") == 2
        assert page.get("ocpp_cp_connected", cp_id=f"{cp_id}-1") == 1
        assert page.get("ocpp_cp_connected", cp_id=f"{cp_id}-2") == 1
    assert "served by another process" in first.log() + second.log()
