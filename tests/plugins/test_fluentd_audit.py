"""FluentdAuditPlugin and FluentdWebSocketAuditPlugin over real daphne, to a real receiver.

The receiver (tests/plugins/fluentd_receiver.py) speaks Fluentd's forward protocol;
the server sends with fluent-logger's asynchronous sender.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from ocpp.v16 import call

from tests.ocpp_client import now_iso
from tests.plugins.conftest import fluentd_plugins
from transactions.models import IdTag

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def audit_server(module_daphne, fluentd):
    return module_daphne(LEVITY_PLUGINS=fluentd_plugins(fluentd.port))


@pytest.fixture
async def audited(connect, audit_server, cp_id):
    """A charge point connected to the audited server."""
    return await connect(cp_id, server=audit_server)


async def test_boot_notification_record_has_the_message_and_the_answer(audited, fluentd, cp_id):
    before = time.time()
    result = await audited.boot(vendor="Acme", model="AC-22", firmware_version="1.2.3")

    [event] = await fluentd.wait_for("ocpp.boot", cp_id)
    assert event.record == {
        "type": "ocpp",
        "cp": cp_id,
        "dir": "recv",
        "msg": {
            "charge_point_vendor": "Acme",
            "charge_point_model": "AC-22",
            "firmware_version": "1.2.3",
        },
        "response": {"status": "Accepted", "interval": 300, "current_time": result.current_time},
    }
    # fluent-logger's EventTime: the time of the record, to below the second.
    assert before <= event.time <= time.time() and event.time != int(event.time)


async def test_heartbeat_record_has_the_answered_time(audited, fluentd, cp_id):
    result = await audited.call(call.Heartbeat())

    [event] = await fluentd.wait_for("ocpp.heartbeat", cp_id)
    assert event.record == {
        "type": "ocpp",
        "cp": cp_id,
        "dir": "recv",
        "msg": {},
        "response": {"current_time": result.current_time},
    }


async def test_status_notification_record_has_the_message(audited, fluentd, cp_id):
    await audited.status(2, "Faulted", error_code="GroundFailure", info="RCD tripped")

    [event] = await fluentd.wait_for("ocpp.status", cp_id)
    assert event.record == {
        "type": "ocpp",
        "cp": cp_id,
        "dir": "recv",
        "msg": {
            "connector_id": 2,
            "error_code": "GroundFailure",
            "status": "Faulted",
            "info": "RCD tripped",
        },
    }


async def test_authorize_record_has_the_id_tag_info_answered(audited, fluentd, cp_id):
    await IdTag.objects.acreate(id_tag=f"T-{cp_id}"[:20])
    await audited.call(call.Authorize(id_tag=f"T-{cp_id}"[:20]))

    [event] = await fluentd.wait_for("ocpp.authorize", cp_id)
    assert event.record["msg"] == {"id_tag": f"T-{cp_id}"[:20]}
    assert event.record["response"] == {"id_tag_info": {"status": "Accepted"}}


async def test_start_transaction_record_has_the_transaction_id(audited, fluentd, cp_id):
    timestamp = now_iso()
    result = await audited.start_transaction(1, "NOBODY", 1000, timestamp=timestamp)

    [event] = await fluentd.wait_for("ocpp.transaction.start", cp_id)
    assert event.record == {
        "type": "ocpp",
        "cp": cp_id,
        "dir": "recv",
        "msg": {"connector_id": 1, "id_tag": "NOBODY", "meter_start": 1000, "timestamp": timestamp},
        "response": {
            "transaction_id": result.transaction_id,
            "id_tag_info": {"status": "Invalid"},
        },
    }


async def test_meter_values_record_has_the_sampled_values_as_sent(audited, fluentd, cp_id):
    started = await audited.start_transaction(1, "NOBODY", 0)
    meter_value = [
        {
            "timestamp": now_iso(),
            "sampled_value": [
                {"value": "1.25", "unit": "kWh", "measurand": "Energy.Active.Import.Register"},
                {"value": "15.9", "unit": "A", "measurand": "Current.Import", "phase": "L1"},
            ],
        }
    ]
    await audited.call(
        call.MeterValues(connector_id=1, transaction_id=started.transaction_id, meter_value=meter_value)
    )

    [event] = await fluentd.wait_for("ocpp.meter", cp_id)
    assert event.record == {
        "type": "ocpp",
        "cp": cp_id,
        "dir": "recv",
        "msg": {
            "connector_id": 1,
            "transaction_id": started.transaction_id,
            "meter_value": meter_value,
        },
    }


async def test_stop_transaction_record_carries_the_energy_delivered(audited, fluentd, cp_id):
    started = await audited.start_transaction(1, "NOBODY", 10_500)
    stop_time = now_iso()
    await audited.stop_transaction(
        started.transaction_id, 18_250, timestamp=stop_time, reason="EVDisconnected"
    )

    [event] = await fluentd.wait_for("ocpp.transaction.stop", cp_id)
    assert event.record == {
        "type": "ocpp",
        "cp": cp_id,
        "dir": "recv",
        "msg": {
            "transaction_id": started.transaction_id,
            "meter_stop": 18_250,
            "timestamp": stop_time,
            "reason": "EVDisconnected",
        },
        "energy_wh": 7_750,
        "connector_id": 1,
        "meter_start": 10_500,
        "outcome": "stopped",
    }


async def test_stop_of_an_unknown_transaction_is_recorded_as_rebuilt_without_energy(audited, fluentd, cp_id):
    await audited.stop_transaction(999_999_999, 500)

    [event] = await fluentd.wait_for("ocpp.transaction.stop", cp_id)
    # Rebuilt from the stop alone: no reading to start from, so no energy claimed.
    assert (event.record["energy_wh"], event.record["meter_start"], event.record["connector_id"]) == (
        0,
        500,
        0,
    )
    assert event.record["outcome"] == "rebuilt"


async def test_websocket_connect_and_disconnect_are_recorded(connect, audit_server, fluentd, cp_id):
    client = await connect(cp_id, server=audit_server)
    host, port = client._connection.local_address[:2]
    [connected] = await fluentd.wait_for("ocpp.ws", cp_id)
    assert connected.record == {
        "type": "ws",
        "cp": cp_id,
        "event": "connect",
        "remote_addr": f"{host}:{port}",
    }
    await asyncio.sleep(0.3)
    await client.close()

    events = await fluentd.wait_for("ocpp.ws", cp_id, count=2)
    disconnected = events[1].record
    assert {k: disconnected[k] for k in ("type", "cp", "event", "remote_addr", "close_code")} == {
        "type": "ws",
        "cp": cp_id,
        "event": "disconnect",
        "remote_addr": f"{host}:{port}",
        "close_code": 1000,
    }
    assert 0.3 <= disconnected["duration_s"] < 5


async def test_all_sessions_share_one_connection_to_fluentd(connect, audit_server, fluentd, cp_id):
    clients = [await connect(f"{cp_id}-{n}", server=audit_server) for n in range(5)]
    await asyncio.gather(*(client.boot() for client in clients))
    for n in range(5):
        await fluentd.wait_for("ocpp.boot", f"{cp_id}-{n}")

    # One sender (one thread, one TCP connection) per destination, for every session.
    assert fluentd.connections_accepted == 1
