"""CP-initiated messages over a real daphne server, asserting frames and rows."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from ocpp.v16 import call

from chargepoints.models import (
    ChargePoint,
    Connector,
    DataTransfer,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    StatusNotification,
)
from tests.conftest import DaphneServer, eventually, server_env

pytestmark = pytest.mark.django_db(transaction=True)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# --- BootNotification --------------------------------------------------------------


async def test_boot_notification_is_accepted_with_interval_and_records_identity(connect, cp_id):
    client = await connect(cp_id)
    result = await client.boot(
        vendor="Acme",
        model="AC-22",
        firmware_version="1.2.3",
        charge_point_serial_number="SN1",
        charge_box_serial_number="BOX1",
        iccid="8931000000000000001",
        imsi="262010000000001",
        meter_type="ABB B23",
        meter_serial_number="M-77",
    )
    assert result.status == "Accepted"
    assert result.interval == 300
    assert result.current_time.endswith("Z")
    cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert (cp.charge_point_vendor, cp.charge_point_model) == ("Acme", "AC-22")
    assert (cp.charge_point_serial_number, cp.charge_box_serial_number) == ("SN1", "BOX1")
    assert cp.firmware_version == "1.2.3"
    assert (cp.iccid, cp.imsi) == ("8931000000000000001", "262010000000001")
    assert (cp.meter_type, cp.meter_serial_number) == ("ABB B23", "M-77")
    assert cp.is_connected and cp.last_boot_at is not None


async def test_boot_notification_frame_has_exactly_status_interval_and_time(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(
            [2, "b-1", "BootNotification", {"chargePointVendor": "A", "chargePointModel": "M"}]
        )
    assert answer[0:2] == [3, "b-1"]
    assert set(answer[2]) == {"status", "interval", "currentTime"}
    assert (answer[2]["status"], answer[2]["interval"]) == ("Accepted", 300)
    sent = datetime.fromisoformat(answer[2]["currentTime"])
    assert abs((datetime.now(timezone.utc) - sent).total_seconds()) < 5


@pytest.mark.parametrize("registration_status", ["Pending", "Rejected"])
async def test_boot_notification_answers_the_operators_registration_status(
    connect, cp_id, registration_status
):
    await ChargePoint.objects.acreate(charge_point_id=cp_id, registration_status=registration_status)
    client = await connect(cp_id)
    result = await client.boot()
    assert result.status == registration_status
    assert result.interval == 300
    cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert cp.charge_point_vendor == "Acme"  # identity is recorded in any case


async def test_heartbeat_interval_comes_from_the_environment(start_daphne, cp_id):
    from tests.ocpp_client import OCPPClient

    server = start_daphne(LEVITY_HEARTBEAT_INTERVAL="42")
    client = await OCPPClient.open(server.ws_url(cp_id))
    try:
        assert (await client.boot()).interval == 42
    finally:
        await client.close()


async def test_second_boot_updates_identity(connect, cp_id):
    client = await connect(cp_id)
    await client.boot(firmware_version="1.0")
    await client.boot(firmware_version="2.0")
    cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert cp.firmware_version == "2.0"


# --- Heartbeat ---------------------------------------------------------------------


async def test_heartbeat_answers_current_time_in_utc(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "h-1", "Heartbeat", {}])
    assert answer[0:2] == [3, "h-1"] and list(answer[2]) == ["currentTime"]
    assert answer[2]["currentTime"].endswith("Z")
    sent = datetime.fromisoformat(answer[2]["currentTime"])
    assert abs((datetime.now(timezone.utc) - sent).total_seconds()) < 5


@pytest.fixture(scope="module")
def unflushed_server(django_db_setup, test_db_path, tmp_path_factory):
    """daphne whose last-seen flusher never runs during a test: only a disconnect writes them."""
    env = server_env(test_db_path, LEVITY_LAST_SEEN_FLUSH_SECONDS="3600")
    daphne = DaphneServer(env, tmp_path_factory.mktemp("unflushed") / "daphne.log").start()
    yield daphne
    daphne.stop()


async def test_heartbeat_is_not_written_when_it_is_answered(unflushed_server, connect, cp_id):
    client = await connect(cp_id, server=unflushed_server)
    await client.call(call.Heartbeat())
    cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert cp.last_heartbeat_at is None and cp.is_connected


async def test_last_seen_times_are_written_in_bulk_by_the_flusher(connect, cp_id):
    client = await connect(cp_id)  # LEVITY_LAST_SEEN_FLUSH_SECONDS=0.5 in tests
    before = await ChargePoint.objects.aget(charge_point_id=cp_id)
    await client.call(call.Heartbeat())

    async def flushed() -> ChargePoint | None:
        cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
        return cp if cp.last_heartbeat_at is not None else None

    cp = await eventually(flushed)
    assert cp.is_connected and cp.last_seen_at >= before.last_seen_at


async def test_last_heartbeat_is_written_at_disconnect(unflushed_server, connect, cp_id):
    client = await connect(cp_id, server=unflushed_server)
    await client.call(call.Heartbeat())
    await client.close()

    async def written() -> bool:
        cp = await ChargePoint.objects.aget(charge_point_id=cp_id)
        return not cp.is_connected and cp.last_heartbeat_at is not None

    await eventually(written)


# --- StatusNotification ---------------------------------------------------------------


async def test_status_notification_updates_connector_and_history(connect, cp_id):
    client = await connect(cp_id)
    await client.status(1, "Available")
    await client.status(1, "Preparing")
    connector = await Connector.objects.aget(charge_point__charge_point_id=cp_id, connector_id=1)
    assert connector.status == "Preparing"
    history = [
        s.status
        async for s in StatusNotification.objects.filter(charge_point__charge_point_id=cp_id).order_by("id")
    ]
    assert history == ["Available", "Preparing"]


async def test_status_notification_stores_every_field_and_answers_empty(raw_ws, cp_id):
    payload = {
        "connectorId": 2,
        "errorCode": "GroundFailure",
        "status": "Faulted",
        "info": "RCD tripped",
        "timestamp": "2025-03-01T10:00:00Z",
        "vendorId": "com.acme",
        "vendorErrorCode": "E42",
    }
    async with raw_ws(cp_id) as session:
        assert await session.exchange([2, "s-1", "StatusNotification", payload]) == [
            3,
            "s-1",
            {},
        ]
    connector = await Connector.objects.aget(charge_point__charge_point_id=cp_id, connector_id=2)
    assert (connector.status, connector.error_code, connector.info) == (
        "Faulted",
        "GroundFailure",
        "RCD tripped",
    )
    assert (connector.vendor_id, connector.vendor_error_code) == ("com.acme", "E42")
    assert connector.status_timestamp == utc("2025-03-01T10:00:00")
    row = await StatusNotification.objects.aget(charge_point__charge_point_id=cp_id)
    assert (row.connector_id, row.status, row.error_code, row.vendor_error_code) == (
        2,
        "Faulted",
        "GroundFailure",
        "E42",
    )
    assert row.timestamp == utc("2025-03-01T10:00:00") and row.received_at is not None


async def test_status_notification_for_connector_zero_is_the_whole_charge_point(connect, cp_id):
    client = await connect(cp_id)
    await client.status(0, "Unavailable")
    connector = await Connector.objects.aget(charge_point__charge_point_id=cp_id, connector_id=0)
    assert connector.status == "Unavailable"


async def test_status_notification_without_timestamp_uses_server_time(connect, cp_id):
    client = await connect(cp_id)
    before = datetime.now(timezone.utc)
    await client.status(1, "Available")
    connector = await Connector.objects.aget(charge_point__charge_point_id=cp_id, connector_id=1)
    assert connector.status_timestamp >= before.replace(microsecond=0)
    row = await StatusNotification.objects.aget(charge_point__charge_point_id=cp_id)
    assert row.timestamp is None


async def test_late_status_notification_is_kept_in_history_only(connect, cp_id):
    client = await connect(cp_id)
    await client.status(1, "Charging", timestamp="2025-03-01T10:05:00Z")
    await client.status(1, "Preparing", timestamp="2025-03-01T10:00:00Z")  # queued, sent late
    connector = await Connector.objects.aget(charge_point__charge_point_id=cp_id, connector_id=1)
    assert connector.status == "Charging"
    assert await StatusNotification.objects.filter(charge_point__charge_point_id=cp_id).acount() == 2


async def test_burst_of_status_notifications_after_boot_is_stored(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        for n in range(4):
            await session.send(
                [
                    2,
                    f"s-{n}",
                    "StatusNotification",
                    {"connectorId": n, "errorCode": "NoError", "status": "Available"},
                ]
            )
        answers = [await session.recv() for _ in range(4)]
    assert answers == [[3, f"s-{n}", {}] for n in range(4)]
    ids = [c.connector_id async for c in Connector.objects.filter(charge_point__charge_point_id=cp_id)]
    assert ids == [0, 1, 2, 3]


async def test_status_notification_with_negative_connector_is_refused(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(
            [
                2,
                "s-neg",
                "StatusNotification",
                {"connectorId": -1, "errorCode": "NoError", "status": "Available"},
            ]
        )
    assert answer[0:3] == [4, "s-neg", "PropertyConstraintViolation"]
    assert not await StatusNotification.objects.filter(charge_point__charge_point_id=cp_id).aexists()


# --- DataTransfer ------------------------------------------------------------------


async def test_data_transfer_for_unknown_vendor_is_answered_and_logged(raw_ws, cp_id):
    payload = {"vendorId": "com.example", "messageId": "Hello", "data": '{"a": 1}'}
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "d-1", "DataTransfer", payload])
    assert answer == [3, "d-1", {"status": "UnknownVendorId"}]
    row = await DataTransfer.objects.aget(charge_point__charge_point_id=cp_id)
    assert (row.vendor_id, row.message_id, row.data) == ("com.example", "Hello", '{"a": 1}')
    assert (row.status, row.response_data) == ("UnknownVendorId", "")


async def test_data_transfer_with_only_vendor_id_is_logged(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "d-2", "DataTransfer", {"vendorId": "x"}])
    assert answer == [3, "d-2", {"status": "UnknownVendorId"}]
    row = await DataTransfer.objects.aget(charge_point__charge_point_id=cp_id)
    assert (row.vendor_id, row.message_id, row.data) == ("x", "", "")


@pytest.fixture(scope="module")
def acme_server(module_daphne):
    """A server with a Django app that handles the "com.acme" vendor's DataTransfer."""
    return module_daphne(LEVITY_EXTRA_APPS="tests.acme_vendor")


async def test_data_transfer_receiver_answer_is_sent_and_logged(acme_server, raw_ws, cp_id):
    payload = {"vendorId": "com.acme", "messageId": "Echo", "data": "ping"}
    async with raw_ws(cp_id, server=acme_server) as session:
        answer = await session.exchange([2, "d-3", "DataTransfer", payload])
    assert answer == [3, "d-3", {"status": "Accepted", "data": "PING"}]
    row = await DataTransfer.objects.aget(charge_point__charge_point_id=cp_id)
    assert (row.status, row.response_data) == ("Accepted", "PING")


async def test_data_transfer_receiver_may_answer_unknown_message_id(acme_server, raw_ws, cp_id):
    async with raw_ws(cp_id, server=acme_server) as session:
        answer = await session.exchange(
            [2, "d-4", "DataTransfer", {"vendorId": "com.acme", "messageId": "Nope"}]
        )
        other = await session.exchange([2, "d-5", "DataTransfer", {"vendorId": "com.other"}])
    assert answer == [3, "d-4", {"status": "UnknownMessageId"}]
    assert other == [3, "d-5", {"status": "UnknownVendorId"}]
    statuses = [r.status async for r in DataTransfer.objects.order_by("id")]
    assert statuses == ["UnknownMessageId", "UnknownVendorId"]


# --- Diagnostics and firmware status ---------------------------------------------------


@pytest.mark.parametrize("status", ["Idle", "Uploading", "Uploaded", "UploadFailed"])
async def test_diagnostics_status_notification_is_recorded(raw_ws, cp_id, status):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "g-1", "DiagnosticsStatusNotification", {"status": status}])
    assert answer == [3, "g-1", {}]
    row = await DiagnosticsStatusNotification.objects.aget(charge_point__charge_point_id=cp_id)
    assert row.status == status and row.received_at is not None


@pytest.mark.parametrize(
    "status",
    [
        "Downloaded",
        "DownloadFailed",
        "Downloading",
        "Idle",
        "InstallationFailed",
        "Installing",
        "Installed",
    ],
)
async def test_firmware_status_notification_is_recorded(raw_ws, cp_id, status):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "w-1", "FirmwareStatusNotification", {"status": status}])
    assert answer == [3, "w-1", {}]
    row = await FirmwareStatusNotification.objects.aget(charge_point__charge_point_id=cp_id)
    assert row.status == status


async def test_firmware_status_outside_the_enumeration_is_refused(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "w-2", "FirmwareStatusNotification", {"status": "Exploded"}])
    assert answer[0:3] == [4, "w-2", "PropertyConstraintViolation"]
    assert not await FirmwareStatusNotification.objects.aexists()


def test_a_subclass_override_of_a_handler_is_the_one_routed():
    from chargepoints.ocpp16.session import LevityChargePoint, handlers

    class Quiet(LevityChargePoint):
        async def on_heartbeat(self, **kwargs):  # not decorated again
            return "overridden"

    assert handlers(Quiet)["Heartbeat"] is Quiet.on_heartbeat
    assert handlers(LevityChargePoint)["Heartbeat"] is LevityChargePoint.on_heartbeat
    assert set(handlers(Quiet)) == LevityChargePoint.answered_actions()


def test_the_session_is_levitys_own_class_not_ocpps_charge_point():
    from ocpp.charge_point import ChargePoint as OCPPChargePoint

    from chargepoints.ocpp16.session import LevityChargePoint

    assert not issubclass(LevityChargePoint, OCPPChargePoint)


def test_an_ocpp_after_handler_is_refused_when_the_class_is_made():
    from ocpp.routing import after
    from ocpp.v16.enums import Action

    from chargepoints.ocpp16.session import LevityChargePoint

    with pytest.raises(TypeError, match="after_heartbeat is an ocpp @after handler"):

        class WithAfter(LevityChargePoint):
            @after(Action.heartbeat)
            async def after_heartbeat(self, **kwargs):
                pass


def test_handlers_of_a_mixin_are_collected_through_the_mro():
    from ocpp.routing import on

    from chargepoints.ocpp16.session import LevityChargePoint, handlers

    class Extension:
        @on("SignCertificate")
        async def on_sign_certificate(self, csr: str, **kwargs):
            return {"status": "Accepted"}

    class Extended(Extension, LevityChargePoint):
        pass

    assert handlers(Extended)["SignCertificate"] is Extension.on_sign_certificate
    assert Extended.answered_actions() == LevityChargePoint.answered_actions() | {"SignCertificate"}


def frames_of(charge_point_class, frame: list) -> list:
    from plugins.testing import FakeConnection

    async def exchange() -> list:
        connection = FakeConnection()
        session = charge_point_class("CP-SKIP", connection)
        connection.charge_point = session
        await session.receive_frame(json.dumps(frame))
        await eventually(lambda: session._worker is None)
        return connection.sent

    return asyncio.run(exchange())


def test_a_handler_marked_skip_schema_validation_gets_the_payload_unvalidated():
    from ocpp.routing import on
    from ocpp.v16 import call_result

    from chargepoints.ocpp16.session import LevityChargePoint

    class Unchecked(LevityChargePoint):
        @on("Heartbeat", skip_schema_validation=True)
        def on_heartbeat(self, **kwargs):  # ocpp's @on allows a synchronous handler too
            return call_result.Heartbeat(current_time=str(sorted(kwargs)))

    assert frames_of(Unchecked, [2, "u-1", "Heartbeat", {"notInTheSchema": 1}]) == [
        [3, "u-1", {"currentTime": "['not_in_the_schema']"}]
    ]
    assert frames_of(LevityChargePoint, [2, "u-2", "Heartbeat", {"notInTheSchema": 1}])[0][:3] == [
        4,
        "u-2",
        "FormationViolation",
    ]
