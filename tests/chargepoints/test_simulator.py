"""``manage.py simulate_charge_point`` against a real daphne server, asserting the rows it
produces; and the simulated charger's answers to every CS->CP command, asked by a real
LevityChargePoint over a real WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
import websockets
from ocpp.v16 import call

from chargepoints.models import (
    ChargePoint,
    Connector,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    StatusNotification,
)
from chargepoints.ocpp16.session import LevityChargePoint
from chargepoints.simulator import SimulatedChargePoint, SimulatorOptions, connect
from tests.conftest import PROJECT_DIR, eventually, free_port, server_env
from transactions.models import IdTag, MeterValue, Transaction

pytestmark = pytest.mark.django_db(transaction=True)

FAST = ["--meter-interval", "0.2", "--session-duration", "0.7", "--pause", "0.1"]


def simulate(test_db_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "simulate_charge_point", *args],
        cwd=PROJECT_DIR,
        env=server_env(test_db_path),
        capture_output=True,
        text=True,
        timeout=90,
    )


# --- the command, in a subprocess, against daphne ----------------------------------------


def test_simulator_runs_its_sessions_and_exits_0(daphne_server, test_db_path, cp_id):
    IdTag.objects.create(id_tag="SIMTAG")
    result = simulate(
        test_db_path,
        cp_id,
        "--url",
        f"ws://127.0.0.1:{daphne_server.port}/ocpp",
        "--sessions",
        "2",
        "--connectors",
        "2",
        "--id-tag",
        "SIMTAG",
        *FAST,
    )
    assert result.returncode == 0, result.stderr
    assert "Authorize SIMTAG: Accepted" in result.stdout
    assert result.stdout.strip().endswith("2 session(s) completed; disconnected")

    cp = ChargePoint.objects.get(charge_point_id=cp_id)
    assert (cp.charge_point_vendor, cp.charge_point_model, cp.firmware_version) == (
        "Levity",
        "Simulator",
        "sim-1.0",
    )
    transactions = list(Transaction.objects.filter(charge_point=cp).order_by("pk"))
    assert [tx.connector_id for tx in transactions] == [1, 2]
    for tx in transactions:
        assert (tx.id_tag, tx.id_tag_status, tx.stop_reason) == (
            "SIMTAG",
            "Accepted",
            "EVDisconnected",
        )
        assert tx.stop_id_tag == "SIMTAG"
        assert tx.energy_wh == tx.meter_stop - tx.meter_start >= 0
        assert tx.stop_timestamp > tx.start_timestamp
        periodic = tx.meter_values.filter(context="Sample.Periodic")
        assert set(periodic.values_list("measurand", flat=True)) == {
            "Energy.Active.Import.Register",
            "Power.Active.Import",
            "Current.Import",
            "Voltage",
        }
        assert periodic.filter(measurand="Voltage").count() >= 2
        assert (
            periodic.get(
                measurand="Power.Active.Import", timestamp=periodic.first().timestamp
            ).normalized_value
            == 11000
        )
        # StopTransaction's transactionData, linked to the transaction.
        assert list(tx.meter_values.exclude(context="Sample.Periodic").values_list("context", "value")) == [
            ("Transaction.Begin", str(tx.meter_start)),
            ("Transaction.End", str(tx.meter_stop)),
        ]

    history = list(
        StatusNotification.objects.filter(charge_point=cp, connector_id=1)
        .order_by("id")
        .values_list("status", flat=True)
    )
    assert history == ["Available", "Preparing", "Charging", "Finishing", "Available"]
    assert Connector.objects.get(charge_point=cp, connector_id=0).status == "Available"

    async def offline() -> bool:  # the server records the disconnect just after the exit
        return not (await ChargePoint.objects.aget(pk=cp.pk)).is_connected

    asyncio.run(eventually(offline))


def test_simulator_heartbeats_at_the_interval_the_server_gave(start_daphne, test_db_path, cp_id):
    server = start_daphne(LEVITY_HEARTBEAT_INTERVAL="1")
    IdTag.objects.create(id_tag="SIMTAG")
    result = simulate(
        test_db_path,
        cp_id,
        "--url",
        f"ws://127.0.0.1:{server.port}/ocpp",
        "--id-tag",
        "SIMTAG",
        "--meter-interval",
        "0.5",
        "--session-duration",
        "2.4",
    )
    assert result.returncode == 0, result.stderr
    assert "BootNotification: Accepted (interval 1s)" in result.stdout
    assert result.stdout.count("Heartbeat: server time") >= 2
    assert ChargePoint.objects.get(charge_point_id=cp_id).last_heartbeat_at is not None


def test_simulator_with_a_tag_the_server_refuses_starts_no_transaction(daphne_server, test_db_path, cp_id):
    result = simulate(test_db_path, cp_id, "--url", f"ws://127.0.0.1:{daphne_server.port}/ocpp", *FAST)
    assert result.returncode == 0, result.stderr
    assert "Authorize SIMULATOR: Invalid" in result.stdout
    assert not Transaction.objects.exists()
    history = StatusNotification.objects.filter(connector_id=1).order_by("id")
    assert list(history.values_list("status", flat=True)) == ["Available", "Preparing", "Available"]


@pytest.mark.once  # no server, no database
def test_simulator_exits_non_zero_with_one_line_when_server_is_unreachable(test_db_path):
    url = f"ws://127.0.0.1:{free_port()}/ocpp"
    result = simulate(test_db_path, "CP-NOWHERE", "--url", url)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"CommandError: cannot connect to {url}/CP-NOWHERE")
    assert not result.stdout


def test_simulator_exits_non_zero_when_the_server_refuses_the_id(daphne_server, test_db_path):
    result = simulate(test_db_path, "CP BAD/ID", "--url", f"ws://127.0.0.1:{daphne_server.port}/ocpp")
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()
    assert "refused the connection (HTTP 403)" in line


@pytest.mark.once  # refused before it connects
def test_simulator_refuses_bad_arguments_with_one_line(test_db_path):
    result = simulate(test_db_path, "CP-1", "--id-tag", "X" * 21)
    assert result.returncode != 0
    assert result.stderr.strip() == "CommandError: --id-tag must be 1 to 20 characters (OCPP CiString20)."


async def test_simulator_answers_remote_start_and_stop_sent_through_the_api(
    daphne_server, test_db_path, api, cp_id
):
    """--sessions 0: idle until the operator starts a session through the HTTP API."""
    await IdTag.objects.acreate(id_tag="SIMTAG")
    simulator = subprocess.Popen(  # noqa: ASYNC220  starting it does not block; it runs beside the test
        [
            sys.executable, "manage.py", "simulate_charge_point", cp_id,
            "--url", f"ws://127.0.0.1:{daphne_server.port}/ocpp",
            "--sessions", "0", "--meter-interval", "0.2",
        ],
        cwd=PROJECT_DIR, env=server_env(test_db_path), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        async def booted():
            return await Connector.objects.filter(
                charge_point__charge_point_id=cp_id, connector_id=1
            ).aexists()

        await eventually(booted, timeout=30)
        started = await api.post(
            f"/charge-points/{cp_id}/commands",
            json={"action": "RemoteStartTransaction", "payload": {"idTag": "SIMTAG"}},
        )
        assert started.json()["response_status"] == "Accepted", started.text

        async def charging():
            return await Transaction.objects.active().filter(charge_point__charge_point_id=cp_id).afirst()

        tx = await eventually(charging)
        stopped = await api.post(
            f"/charge-points/{cp_id}/commands",
            json={"action": "RemoteStopTransaction", "payload": {"transactionId": tx.pk}},
        )
        assert stopped.json()["response_status"] == "Accepted", stopped.text

        async def stopped_remotely():
            row = await Transaction.objects.aget(pk=tx.pk)
            return row.stop_reason == "Remote"

        await eventually(stopped_remotely)
    finally:
        simulator.terminate()  # SIGTERM: a clean stop, as Ctrl-C
        out, err = simulator.communicate(timeout=30)
    assert simulator.returncode == 0, err
    assert "RemoteStartTransaction SIMTAG: Accepted on connector 1" in out
    assert out.strip().endswith("0 session(s) completed; disconnected")


# --- answers to CS->CP commands -----------------------------------------------------------


class Bench:
    """A LevityChargePoint (the Central System side) and the simulator it is talking to."""

    def __init__(
        self,
        cs: LevityChargePoint,
        sim: SimulatedChargePoint,
        cp_id: str,
        serving: asyncio.Task,
    ):
        self.cs = cs
        self.sim = sim
        self.cp_id = cp_id
        self.serving = serving  # the simulator's serve()

    async def call(self, payload):
        return await self.cs.call(payload, suppress=False, timeout=10)

    async def statuses(self, connector_id: int) -> list[str]:
        return [
            s.status
            async for s in StatusNotification.objects.filter(
                charge_point__charge_point_id=self.cp_id, connector_id=connector_id
            ).order_by("id")
        ]

    async def active_transaction(self) -> Transaction | None:
        return await Transaction.objects.active().filter(charge_point__charge_point_id=self.cp_id).afirst()

    async def start_remotely(self, connector_id: int = 1) -> Transaction:
        answer = await self.call(call.RemoteStartTransaction(id_tag="SIMTAG", connector_id=connector_id))
        assert answer.status == "Accepted"
        return await eventually(self.active_transaction)

    async def stopped(self, tx: Transaction) -> Transaction:
        async def check():
            row = await Transaction.objects.aget(pk=tx.pk)
            return row if not row.is_active else None

        return await eventually(check)


@pytest.fixture
async def bench(cp_id):
    """The simulator (2 connectors, tag SIMTAG accepted) connected to a LevityChargePoint."""
    await IdTag.objects.acreate(id_tag="SIMTAG")
    sessions: dict[str, LevityChargePoint] = {}

    async def serve(ws):
        sessions["cs"] = LevityChargePoint(cp_id, ws)
        with contextlib.suppress(websockets.ConnectionClosed):
            await sessions["cs"].start()

    async with websockets.serve(serve, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:
        port = server.sockets[0].getsockname()[1]
        options = SimulatorOptions(
            cp_id,
            url=f"ws://127.0.0.1:{port}/ocpp",
            sessions=0,
            connectors=2,
            id_tag="SIMTAG",
            meter_interval=0.1,
            session_duration=60,
        )
        connection = await connect(options)
        sim = SimulatedChargePoint(options, connection, say=lambda line: None)
        serving = asyncio.create_task(sim.serve())
        await asyncio.wait_for(sim.booted.wait(), 10)
        yield Bench(sessions["cs"], sim, cp_id, serving)
        sim.request_shutdown()
        await asyncio.wait_for(serving, 10)  # a shutdown that hangs fails the test
        await connection.close()


async def test_remote_start_starts_a_session_and_remote_stop_stops_it(bench):
    tx = await bench.start_remotely(connector_id=2)
    assert (tx.connector_id, tx.id_tag) == (2, "SIMTAG")
    await eventually(lambda: MeterValue.objects.filter(transaction=tx).aexists())
    answer = await bench.call(call.RemoteStopTransaction(transaction_id=tx.pk))
    assert answer.status == "Accepted"
    tx = await bench.stopped(tx)
    assert tx.stop_reason == "Remote"

    async def whole_cycle_reported():
        cycle = ["Available", "Preparing", "Charging", "Finishing", "Available"]
        return await bench.statuses(2) == cycle

    await eventually(whole_cycle_reported)


async def test_remote_start_on_a_busy_connector_is_rejected(bench):
    await bench.start_remotely(connector_id=1)
    answer = await bench.call(call.RemoteStartTransaction(id_tag="OTHER", connector_id=1))
    assert answer.status == "Rejected"


async def test_remote_stop_of_unknown_transaction_is_rejected(bench):
    answer = await bench.call(call.RemoteStopTransaction(transaction_id=999999))
    assert answer.status == "Rejected"


@pytest.mark.parametrize("reset_type", ["Soft", "Hard"])
async def test_reset_stops_the_session_and_boots_again(bench, reset_type):
    tx = await bench.start_remotely()
    before = await ChargePoint.objects.aget(charge_point_id=bench.cp_id)
    answer = await bench.call(call.Reset(type=reset_type))
    assert answer.status == "Accepted"
    tx = await bench.stopped(tx)
    assert tx.stop_reason == f"{reset_type}Reset"

    async def booted_again():
        cp = await ChargePoint.objects.aget(charge_point_id=bench.cp_id)
        return cp.last_boot_at > before.last_boot_at

    await eventually(booted_again)


async def test_reset_while_a_remote_start_is_starting_stops_the_session_once_started(bench):
    sim_call = bench.sim.call

    async def call_after_a_reset(payload, *args, **kwargs):
        if isinstance(payload, call.StartTransaction):  # the Reset comes first
            assert (await bench.call(call.Reset(type="Soft"))).status == "Accepted"
        return await sim_call(payload, *args, **kwargs)

    bench.sim.call = call_after_a_reset
    answer = await bench.call(call.RemoteStartTransaction(id_tag="SIMTAG", connector_id=1))
    assert answer.status == "Accepted"

    async def stopped_transaction():
        return (
            await Transaction.objects.filter(charge_point__charge_point_id=bench.cp_id)
            .exclude(stop_timestamp=None)
            .afirst()
        )

    assert (await eventually(stopped_transaction)).stop_reason == "SoftReset"

    async def never_charging():  # then the reboot reports the connector again
        history = await bench.statuses(1)
        return history[:4] == ["Available", "Preparing", "Finishing", "Available"] and history

    assert "Charging" not in await eventually(never_charging)


async def test_shutdown_as_the_reboot_after_a_reset_is_answered_finishes_promptly(bench):
    """Shutdown requested just as the BootNotification answer after a Reset comes in.

    serve() then cancels the reboot while its answer is in; the reboot must end there
    and not wait for answers to further calls that nobody reads any more.
    """
    receive = bench.sim.route_message

    async def route_message(raw: str) -> None:
        message = json.loads(raw)
        if message[0] == 3 and "interval" in message[2]:  # BootNotification.conf
            bench.sim.request_shutdown()
        await receive(raw)

    bench.sim.route_message = route_message
    assert (await bench.call(call.Reset(type="Soft"))).status == "Accepted"
    assert await asyncio.wait_for(bench.serving, 5) == 0


async def test_unlock_connector_stops_its_session(bench):
    tx = await bench.start_remotely()
    answer = await bench.call(call.UnlockConnector(connector_id=1))
    assert answer.status == "Unlocked"
    assert (await bench.stopped(tx)).stop_reason == "UnlockCommand"


async def test_unlock_of_unknown_connector_is_not_supported(bench):
    assert (await bench.call(call.UnlockConnector(connector_id=9))).status == "NotSupported"


async def test_change_availability_makes_an_idle_connector_unavailable(bench):
    answer = await bench.call(call.ChangeAvailability(connector_id=2, type="Inoperative"))
    assert answer.status == "Accepted"

    async def unavailable():
        return (await bench.statuses(2))[-1] == "Unavailable"

    await eventually(unavailable)
    answer = await bench.call(call.RemoteStartTransaction(id_tag="SIMTAG", connector_id=2))
    assert answer.status == "Rejected"


async def test_change_availability_during_a_session_is_scheduled(bench):
    tx = await bench.start_remotely()
    answer = await bench.call(call.ChangeAvailability(connector_id=0, type="Inoperative"))
    assert answer.status == "Scheduled"
    await bench.call(call.RemoteStopTransaction(transaction_id=tx.pk))

    async def unavailable_after_session():
        return (await bench.statuses(1))[-1] == "Unavailable"

    await eventually(unavailable_after_session)


async def test_get_configuration_returns_the_key_store(bench):
    everything = await bench.call(call.GetConfiguration())
    keys = {k["key"]: k for k in everything.configuration_key}
    assert keys["HeartbeatInterval"] == {
        "key": "HeartbeatInterval",
        "readonly": False,
        "value": "300",
    }
    assert keys["NumberOfConnectors"] == {
        "key": "NumberOfConnectors",
        "readonly": True,
        "value": "2",
    }
    some = await bench.call(call.GetConfiguration(key=["MeterValueSampleInterval", "NoSuchKey"]))
    assert some.configuration_key == [{"key": "MeterValueSampleInterval", "readonly": False, "value": "0.1"}]
    assert some.unknown_key == ["NoSuchKey"]


@pytest.mark.parametrize(
    ("key", "value", "status"),
    [
        ("MeterValueSampleInterval", "2", "Accepted"),
        ("AuthorizeRemoteTxRequests", "TRUE", "Accepted"),
        ("HeartbeatInterval", "soon", "Rejected"),
        ("NumberOfConnectors", "5", "Rejected"),
        ("NoSuchKey", "1", "NotSupported"),
    ],
)
async def test_change_configuration_updates_the_key_store(bench, key, value, status):
    answer = await bench.call(call.ChangeConfiguration(key=key, value=value))
    assert answer.status == status
    if status == "Accepted":
        stored = await bench.call(call.GetConfiguration(key=[key]))
        assert stored.configuration_key[0]["value"] == value.lower()


async def test_authorize_remote_tx_requests_makes_remote_start_authorize_first(bench):
    await IdTag.objects.filter(id_tag="SIMTAG").aupdate(status="Blocked")
    await bench.call(call.ChangeConfiguration(key="AuthorizeRemoteTxRequests", value="true"))
    answer = await bench.call(call.RemoteStartTransaction(id_tag="SIMTAG", connector_id=1))
    assert answer.status == "Accepted"

    async def back_to_available():
        return await bench.statuses(1) == ["Available", "Preparing", "Available"]

    await eventually(back_to_available)
    assert not await Transaction.objects.aexists()


async def test_trigger_status_notification_sends_it(bench):
    answer = await bench.call(call.TriggerMessage(requested_message="StatusNotification", connector_id=2))
    assert answer.status == "Accepted"

    async def sent_again():
        return await bench.statuses(2) == ["Available", "Available"]

    await eventually(sent_again)


async def test_trigger_meter_values_sends_current_readings(bench):
    answer = await bench.call(call.TriggerMessage(requested_message="MeterValues", connector_id=1))
    assert answer.status == "Accepted"
    rows = await eventually(lambda: MeterValue.objects.filter(context="Trigger", connector_id=1).acount())
    assert rows == 4


async def test_trigger_boot_notification_boots_again(bench):
    before = await ChargePoint.objects.aget(charge_point_id=bench.cp_id)
    await bench.call(call.TriggerMessage(requested_message="BootNotification"))

    async def booted_again():
        cp = await ChargePoint.objects.aget(charge_point_id=bench.cp_id)
        return cp.last_boot_at > before.last_boot_at

    await eventually(booted_again)


async def test_trigger_heartbeat_sends_one(bench):
    assert bench.cs.last_heartbeat_at is None
    await bench.call(call.TriggerMessage(requested_message="Heartbeat"))

    async def heartbeat_received():
        return bench.cs.last_heartbeat_at is not None

    await eventually(heartbeat_received)


@pytest.mark.parametrize(
    ("message", "model"),
    [
        ("DiagnosticsStatusNotification", DiagnosticsStatusNotification),
        ("FirmwareStatusNotification", FirmwareStatusNotification),
    ],
)
async def test_trigger_status_messages_send_idle(bench, message, model):
    await bench.call(call.TriggerMessage(requested_message=message))
    row = await eventually(lambda: model.objects.afirst())
    assert row.status == "Idle"


async def test_trigger_for_unknown_connector_is_rejected(bench):
    answer = await bench.call(call.TriggerMessage(requested_message="MeterValues", connector_id=7))
    assert answer.status == "Rejected"


async def test_clear_cache_is_accepted(bench):
    assert (await bench.call(call.ClearCache())).status == "Accepted"


async def test_data_transfer_to_its_own_vendor_is_echoed(bench):
    answer = await bench.call(call.DataTransfer(vendor_id="Levity", message_id="Ping", data="42"))
    assert (answer.status, answer.data) == ("Accepted", "42")
    other = await bench.call(call.DataTransfer(vendor_id="com.example"))
    assert other.status == "UnknownVendorId"


async def test_get_diagnostics_names_a_file_and_reports_the_upload(bench):
    answer = await bench.call(call.GetDiagnostics(location="ftp://127.0.0.1/diagnostics/"))
    assert answer.file_name.startswith(f"diagnostics-{bench.cp_id}-")

    async def uploaded():
        rows = [r.status async for r in DiagnosticsStatusNotification.objects.order_by("id")]
        return rows == ["Uploading", "Uploaded"]

    await eventually(uploaded)


async def test_update_firmware_reports_download_and_installation(bench):
    now = datetime.now(timezone.utc).isoformat()
    await bench.call(call.UpdateFirmware(location="http://127.0.0.1/fw.bin", retrieve_date=now))

    async def installed():
        rows = [r.status async for r in FirmwareStatusNotification.objects.order_by("id")]
        return rows == ["Downloading", "Downloaded", "Installing", "Installed"]

    await eventually(installed)


def in_minutes(minutes: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(minutes=minutes)).isoformat()


async def test_reserve_now_reserves_and_remote_start_uses_the_reservation(bench):
    answer = await bench.call(
        call.ReserveNow(connector_id=1, expiry_date=in_minutes(5), id_tag="SIMTAG", reservation_id=41)
    )
    assert answer.status == "Accepted"

    async def reserved():
        return (await bench.statuses(1))[-1] == "Reserved"

    await eventually(reserved)
    other = await bench.call(call.RemoteStartTransaction(id_tag="STRANGER", connector_id=1))
    assert other.status == "Rejected"
    tx = await bench.start_remotely(connector_id=1)
    assert tx.reservation_id == 41


async def test_reserve_now_on_a_busy_connector_is_occupied(bench):
    await bench.start_remotely(connector_id=1)
    answer = await bench.call(
        call.ReserveNow(connector_id=1, expiry_date=in_minutes(5), id_tag="X", reservation_id=1)
    )
    assert answer.status == "Occupied"


async def test_reservation_expires(bench):
    await bench.call(
        call.ReserveNow(connector_id=2, expiry_date=in_minutes(0.01), id_tag="X", reservation_id=2)
    )

    async def expired():
        return await bench.statuses(2) == ["Available", "Reserved", "Available"]

    await eventually(expired)


async def test_cancel_reservation_frees_the_connector(bench):
    await bench.call(call.ReserveNow(connector_id=2, expiry_date=in_minutes(5), id_tag="X", reservation_id=3))
    assert (await bench.call(call.CancelReservation(reservation_id=3))).status == "Accepted"
    assert (await bench.call(call.CancelReservation(reservation_id=3))).status == "Rejected"

    async def available_again():
        return await bench.statuses(2) == ["Available", "Reserved", "Available"]

    await eventually(available_again)


def profile(profile_id: int, purpose: str, limit: float, unit: str = "W") -> dict:
    return {
        "chargingProfileId": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {
            "chargingRateUnit": unit,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
        },
    }


async def test_charging_profile_limits_the_composite_schedule_until_cleared(bench):
    answer = await bench.call(
        call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile(7, "TxDefaultProfile", 3680))
    )
    assert answer.status == "Accepted"
    schedule = await bench.call(call.GetCompositeSchedule(connector_id=1, duration=3600))
    assert schedule.status == "Accepted"
    assert schedule.charging_schedule["charging_rate_unit"] == "W"
    assert schedule.charging_schedule["charging_schedule_period"] == [{"start_period": 0, "limit": 3680.0}]
    in_amps = await bench.call(call.GetCompositeSchedule(connector_id=1, duration=60, charging_rate_unit="A"))
    assert in_amps.charging_schedule["charging_schedule_period"][0]["limit"] == 5.3
    assert (await bench.call(call.ClearChargingProfile(id=7))).status == "Accepted"
    assert (await bench.call(call.ClearChargingProfile(id=7))).status == "Unknown"
    full = await bench.call(call.GetCompositeSchedule(connector_id=1, duration=60))
    assert full.charging_schedule["charging_schedule_period"][0]["limit"] == 11000.0


async def test_charging_profile_limits_the_power_of_a_session(bench):
    await bench.call(
        call.SetChargingProfile(
            connector_id=0, cs_charging_profiles=profile(8, "ChargePointMaxProfile", 10, "A")
        )
    )
    tx = await bench.start_remotely()

    async def power_sampled():
        return await MeterValue.objects.filter(transaction=tx, measurand="Power.Active.Import").afirst()

    assert (await eventually(power_sampled)).normalized_value == 10 * 230 * 3


async def test_tx_profile_without_a_transaction_is_rejected(bench):
    answer = await bench.call(
        call.SetChargingProfile(connector_id=1, cs_charging_profiles=profile(9, "TxProfile", 1000))
    )
    assert answer.status == "Rejected"


async def test_local_list_is_stored_with_its_version(bench):
    entries = [
        {"idTag": "CARD-1", "idTagInfo": {"status": "Accepted"}},
        {"idTag": "CARD-2", "idTagInfo": {"status": "Blocked"}},
    ]
    answer = await bench.call(
        call.SendLocalList(list_version=3, update_type="Full", local_authorization_list=entries)
    )
    assert answer.status == "Accepted"
    assert (await bench.call(call.GetLocalListVersion())).list_version == 3
    stale = await bench.call(
        call.SendLocalList(list_version=3, update_type="Differential", local_authorization_list=[])
    )
    assert stale.status == "VersionMismatch"
    assert bench.sim.local_list == {
        "CARD-1": {"status": "Accepted"},
        "CARD-2": {"status": "Blocked"},
    }


# --- the security extension ----------------------------------------------------------------


def _certificate(common_name: str, *, ca: bool = True, key=None, issuer=None):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_cert, issuer_key = issuer or (None, key)
    now = datetime.now(timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_cert.subject if issuer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )
    return certificate, key


def _pem(certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return certificate.public_bytes(serialization.Encoding.PEM).decode()


async def test_installed_root_certificates_are_listed_by_hash_and_can_be_deleted(bench):
    root, _ = _certificate("Levity root")
    installed = await bench.call(
        call.InstallCertificate(certificate_type="CentralSystemRootCertificate", certificate=_pem(root))
    )
    assert installed.status == "Accepted"
    listed = await bench.call(
        call.GetInstalledCertificateIds(certificate_type="CentralSystemRootCertificate")
    )
    assert listed.status == "Accepted"
    [hash_data] = listed.certificate_hash_data
    assert hash_data["serial_number"] == format(root.serial_number, "x")
    assert hash_data["hash_algorithm"] == "SHA256" and len(hash_data["issuer_name_hash"]) == 64
    other = await bench.call(call.GetInstalledCertificateIds(certificate_type="ManufacturerRootCertificate"))
    assert other.status == "NotFound"

    deleted = await bench.call(call.DeleteCertificate(certificate_hash_data=hash_data))
    assert deleted.status == "Accepted"
    again = await bench.call(call.DeleteCertificate(certificate_hash_data=hash_data))
    assert again.status == "NotFound"
    gone = await bench.call(call.GetInstalledCertificateIds(certificate_type="CentralSystemRootCertificate"))
    assert gone.status == "NotFound"


async def test_install_certificate_that_is_not_pem_is_rejected(bench):
    answer = await bench.call(
        call.InstallCertificate(certificate_type="ManufacturerRootCertificate", certificate="nope")
    )
    assert answer.status == "Rejected"


async def test_triggered_sign_certificate_gets_the_charger_a_certificate_from_the_ca(
    bench, tmp_path, settings
):
    from cryptography.hazmat.primitives import serialization

    from chargepoints import certificates
    from chargepoints.models import CertificateSigningRequest

    ca, ca_key = _certificate("Simulator test CA")
    (tmp_path / "ca.pem").write_text(_pem(ca))
    (tmp_path / "ca.key").write_bytes(
        ca_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    settings.LEVITY_CSMS_CA_CERT_FILE = str(tmp_path / "ca.pem")
    settings.LEVITY_CSMS_CA_KEY_FILE = str(tmp_path / "ca.key")
    certificates.configured_authority.cache_clear()
    try:
        answer = await bench.call(call.ExtendedTriggerMessage(requested_message="SignChargePointCertificate"))
        assert answer.status == "Accepted"

        async def installed():
            return await CertificateSigningRequest.objects.filter(
                charge_point__charge_point_id=bench.cp_id, outcome="installed"
            ).afirst()

        request = await eventually(installed, timeout=10)
    finally:
        certificates.configured_authority.cache_clear()
    assert bench.sim.client_certificate is not None
    bench.sim.client_certificate.verify_directly_issued_by(ca)
    assert request.serial_number == format(bench.sim.client_certificate.serial_number, "x")


async def test_certificate_signed_for_another_key_is_rejected(bench):
    leaf, _ = _certificate(bench.cp_id, ca=False)
    answer = await bench.call(call.CertificateSigned(certificate_chain=_pem(leaf)))
    assert answer.status == "Rejected"


async def test_get_log_reports_upload_progress_with_its_request_id(bench):
    from chargepoints.models import LogStatusNotification

    answer = await bench.call(
        call.GetLog(log={"remote_location": "ftp://127.0.0.1/logs/"}, log_type="SecurityLog", request_id=9)
    )
    assert answer.status == "Accepted" and answer.filename.startswith(f"SecurityLog-{bench.cp_id}-")

    async def uploaded():
        rows = [
            (r.status, r.request_id)
            async for r in LogStatusNotification.objects.filter(
                charge_point__charge_point_id=bench.cp_id
            ).order_by("id")
        ]
        return rows == [("Uploading", 9), ("Uploaded", 9)]

    await eventually(uploaded)


async def test_signed_update_firmware_reports_verification_and_installation(bench):
    from chargepoints.models import SignedFirmwareStatusNotification

    signer, _ = _certificate("Firmware signer", ca=False)
    answer = await bench.call(
        call.SignedUpdateFirmware(
            request_id=4,
            firmware={
                "location": "http://127.0.0.1/fw.bin",
                "retrieve_date_time": datetime.now(timezone.utc).isoformat(),
                "signing_certificate": _pem(signer),
                "signature": "c2lnbmF0dXJl",
            },
        )
    )
    assert answer.status == "Accepted"

    async def installed():
        rows = [
            r.status
            async for r in SignedFirmwareStatusNotification.objects.filter(
                charge_point__charge_point_id=bench.cp_id, request_id=4
            ).order_by("id")
        ]
        return rows == ["Downloading", "Downloaded", "SignatureVerified", "Installing", "Installed"]

    await eventually(installed)


async def test_extended_trigger_message_sends_the_log_status(bench):
    from chargepoints.models import LogStatusNotification

    answer = await bench.call(call.ExtendedTriggerMessage(requested_message="LogStatusNotification"))
    assert answer.status == "Accepted"

    async def reported():
        return await LogStatusNotification.objects.filter(
            charge_point__charge_point_id=bench.cp_id, status="Idle"
        ).aexists()

    await eventually(reported)
