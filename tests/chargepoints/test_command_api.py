"""POST /api/v1/charge-points/{id}/commands over a real daphne, answered by a real charge point."""

from __future__ import annotations

import asyncio

import pytest
from ocpp.exceptions import GenericError

from chargepoints.models import ChargePoint, ChargePointCommand, ConfigurationKey
from chargepoints.ocpp16 import protocol
from tests.conftest import eventually

pytestmark = pytest.mark.django_db(transaction=True)

PROFILE = {
    "chargingProfileId": 2,
    "stackLevel": 1,
    "chargingProfilePurpose": "TxDefaultProfile",
    "chargingProfileKind": "Recurring",
    "recurrencyKind": "Daily",
    "chargingSchedule": {
        "chargingRateUnit": "W",
        "duration": 86400,
        "startSchedule": "2025-01-01T00:00:00Z",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 11000.0, "numberPhases": 3},
            {"startPeriod": 3600, "limit": 7400.0},
        ],
    },
}

#: One valid request per OCPP 1.6 CS->CP action, and the `status` the test client answers.
COMMANDS = {
    "RemoteStartTransaction": (
        {
            "connectorId": 1,
            "idTag": "TAG1",
            "chargingProfile": {
                "chargingProfileId": 1,
                "stackLevel": 0,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Absolute",
                "chargingSchedule": {
                    "chargingRateUnit": "A",
                    "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}],
                },
            },
        },
        "Accepted",
    ),
    "RemoteStopTransaction": ({"transactionId": 42}, "Accepted"),
    "Reset": ({"type": "Hard"}, "Accepted"),
    "UnlockConnector": ({"connectorId": 1}, "Unlocked"),
    "ChangeAvailability": ({"connectorId": 0, "type": "Inoperative"}, "Accepted"),
    "ChangeConfiguration": ({"key": "HeartbeatInterval", "value": "120"}, "Accepted"),
    "GetConfiguration": ({"key": ["HeartbeatInterval"]}, ""),
    "ClearCache": ({}, "Accepted"),
    "TriggerMessage": ({"requestedMessage": "StatusNotification", "connectorId": 1}, "Accepted"),
    "DataTransfer": ({"vendorId": "com.acme", "messageId": "ping", "data": "hello"}, "Accepted"),
    "GetDiagnostics": (
        {
            "location": "ftp://diag.example.com/upload",
            "retries": 2,
            "retryInterval": 30,
            "startTime": "2025-01-01T00:00:00Z",
            "stopTime": "2025-01-02T00:00:00Z",
        },
        "",
    ),
    "UpdateFirmware": (
        {"location": "https://fw.example.com/fw.bin", "retrieveDate": "2025-01-01T00:00:00Z"},
        "",
    ),
    "ReserveNow": (
        {"connectorId": 1, "expiryDate": "2030-01-01T00:00:00Z", "idTag": "TAG1", "reservationId": 7},
        "Accepted",
    ),
    "CancelReservation": ({"reservationId": 7}, "Accepted"),
    "SetChargingProfile": ({"connectorId": 1, "csChargingProfiles": PROFILE}, "Accepted"),
    "ClearChargingProfile": (
        {"id": 2, "connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 1},
        "Accepted",
    ),
    "GetCompositeSchedule": ({"connectorId": 1, "duration": 3600, "chargingRateUnit": "W"}, "Accepted"),
    "SendLocalList": (
        {
            "listVersion": 3,
            "updateType": "Full",
            "localAuthorizationList": [
                {"idTag": "TAG1", "idTagInfo": {"status": "Accepted", "expiryDate": "2030-01-01T00:00:00Z"}}
            ],
        },
        "Accepted",
    ),
    "GetLocalListVersion": ({}, ""),
    # The security extension.
    "CertificateSigned": (
        {"certificateChain": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
        "Accepted",
    ),
    "InstallCertificate": (
        {
            "certificateType": "CentralSystemRootCertificate",
            "certificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        },
        "Accepted",
    ),
    "GetInstalledCertificateIds": ({"certificateType": "ManufacturerRootCertificate"}, "Accepted"),
    "DeleteCertificate": (
        {
            "certificateHashData": {
                "hashAlgorithm": "SHA256",
                "issuerNameHash": "a1" * 32,
                "issuerKeyHash": "b2" * 32,
                "serialNumber": "1f",
            }
        },
        "Accepted",
    ),
    "ExtendedTriggerMessage": ({"requestedMessage": "SignChargePointCertificate"}, "Accepted"),
    "GetLog": (
        {
            "logType": "SecurityLog",
            "requestId": 12,
            "retries": 1,
            "retryInterval": 60,
            "log": {
                "remoteLocation": "https://logs.example.com/upload",
                "oldestTimestamp": "2025-01-01T00:00:00Z",
                "latestTimestamp": "2025-01-02T00:00:00Z",
            },
        },
        "Accepted",
    ),
    "SignedUpdateFirmware": (
        {
            "requestId": 5,
            "retries": 2,
            "firmware": {
                "location": "https://fw.example.com/fw.bin",
                "retrieveDateTime": "2025-01-01T00:00:00Z",
                "installDateTime": "2025-01-01T01:00:00Z",
                "signingCertificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                "signature": "c2lnbmF0dXJl",
            },
        },
        "Accepted",
    ),
}


async def command(api, cp_id: str, action: str, payload: dict | None = None, **extra):
    return await api.post(
        f"/charge-points/{cp_id}/commands", json={"action": action, "payload": payload or {}, **extra}
    )


@pytest.mark.parametrize("action", sorted(COMMANDS))
async def test_every_cs_to_cp_command_reaches_the_charge_point_and_its_answer_is_stored(
    api, connect, cp_id, action
):
    payload, answer_status = COMMANDS[action]
    client = await connect(cp_id)
    response = await command(api, cp_id, action, payload)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["action"], body["status"], body["response_status"]) == (action, "accepted", answer_status)
    received = await client.wait_for_command(action)
    assert protocol.to_payload(received) == payload
    stored = await ChargePointCommand.objects.aget(pk=body["id"])
    assert stored.request == payload
    assert stored.response == body["response"]
    assert stored.requested_by == "token:tests"
    assert stored.sent_at is not None and stored.answered_at >= stored.sent_at
    assert stored.duration_ms is not None
    assert response.headers["Location"].endswith(f"/api/v1/commands/{stored.pk}")


async def test_get_installed_certificate_ids_answer_is_stored_with_its_hash_data(api, connect, cp_id):
    await connect(cp_id)
    response = await command(
        api, cp_id, "GetInstalledCertificateIds", {"certificateType": "CentralSystemRootCertificate"}
    )
    assert response.status_code == 201, response.text
    stored = await ChargePointCommand.objects.aget(pk=response.json()["id"])
    assert stored.response == {
        "status": "Accepted",
        "certificateHashData": [
            {
                "hashAlgorithm": "SHA256",
                "issuerNameHash": "a1" * 32,
                "issuerKeyHash": "b2" * 32,
                "serialNumber": "1f",
            }
        ],
    }


async def test_trigger_message_refuses_what_only_extended_trigger_message_may_request(api, connect, cp_id):
    client = await connect(cp_id)
    response = await command(api, cp_id, "TriggerMessage", {"requestedMessage": "SignChargePointCertificate"})
    assert response.status_code == 422
    assert response.json()["field"] == "requestedMessage"
    response = await command(api, cp_id, "ExtendedTriggerMessage", {"requestedMessage": "Foo"})
    assert response.status_code == 422
    assert response.json()["field"] == "requestedMessage"
    assert client.received == []


async def test_get_log_answered_accepted_canceled_counts_as_accepted(api, connect, cp_id):
    client = await connect(cp_id)
    client.answers["GetLog"] = {"status": "AcceptedCanceled"}
    payload, _ = COMMANDS["GetLog"]
    response = await command(api, cp_id, "GetLog", payload)
    assert response.status_code == 201, response.text
    assert (response.json()["status"], response.json()["response_status"]) == (
        "accepted",
        "AcceptedCanceled",
    )


async def test_a_rejected_command_is_answered_201_with_status_rejected(api, connect, cp_id):
    client = await connect(cp_id)
    client.answers["Reset"] = {"status": "Rejected"}
    response = await command(api, cp_id, "Reset", {"type": "Soft"})
    assert response.status_code == 201
    assert (response.json()["status"], response.json()["response_status"]) == ("rejected", "Rejected")


async def test_unknown_charge_point_is_404(api):
    response = await command(api, "NO-SUCH-CP", "ClearCache")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "No charge point with id 'NO-SUCH-CP'"}


async def test_charge_point_not_connected_is_409_and_stored_as_offline(api, connect, cp_id):
    client = await connect(cp_id)
    await client.boot()
    await client.close()

    async def offline() -> bool:
        return not (await ChargePoint.objects.aget(charge_point_id=cp_id)).is_connected

    await eventually(offline)
    response = await command(api, cp_id, "ClearCache")
    assert response.status_code == 409
    body = response.json()
    assert body["error"] == "not_connected"
    assert body["detail"] == f"{cp_id} is not connected"
    stored = await ChargePointCommand.objects.aget(pk=body["command"]["id"])
    assert stored.status == "offline" and stored.sent_at is None


async def test_invalid_payload_is_422_with_the_validation_message(api, connect, cp_id):
    await connect(cp_id)
    response = await command(api, cp_id, "Reset", {"type": "Medium"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_payload"
    assert body["detail"].startswith("Invalid Reset payload: ")
    assert "Soft" in body["detail"] and body["field"] == "type"
    assert body["ocpp_error_code"] == "PropertyConstraintViolation"
    assert not await ChargePointCommand.objects.filter(charge_point__charge_point_id=cp_id).aexists()


async def test_missing_required_field_is_422(api, connect, cp_id):
    await connect(cp_id)
    response = await command(api, cp_id, "RemoteStartTransaction", {"connectorId": 1})
    assert response.status_code == 422
    assert "idTag" in response.json()["detail"]
    assert response.json()["ocpp_error_code"] == "ProtocolError"


async def test_unknown_action_is_422(api, connect, cp_id):
    await connect(cp_id)
    response = await command(api, cp_id, "BootNotification", {})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid_action" and body["field"] == "action"
    assert "'BootNotification' is not an OCPP 1.6 Central System command" in body["detail"]


async def test_timeout_out_of_bounds_is_422(api, connect, cp_id):
    await connect(cp_id)
    response = await command(api, cp_id, "ClearCache", timeout=0)
    assert response.status_code == 422
    assert response.json()["field"] == "timeout"


async def test_no_answer_in_time_is_504_and_stored_as_timeout(api, connect, cp_id):
    client = await connect(cp_id)
    client.delays["Reset"] = 2
    response = await command(api, cp_id, "Reset", {"type": "Soft"}, timeout=0.5)
    assert response.status_code == 504
    body = response.json()
    assert body["error"] == "timeout" and body["detail"] == "No answer within 0.5 s"
    stored = await ChargePointCommand.objects.aget(pk=body["command"]["id"])
    assert stored.status == "timeout" and stored.sent_at is not None and stored.answered_at is None


async def test_callerror_is_502_with_its_code_description_and_details(api, connect, cp_id):
    client = await connect(cp_id)
    client.answers["DataTransfer"] = GenericError(description="vendor boom", details={"why": "test"})
    response = await command(api, cp_id, "DataTransfer", {"vendorId": "com.acme"})
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "callerror"
    assert body["detail"] == "The charge point answered CALLERROR GenericError: vendor boom"
    assert body["command"]["status"] == "callerror"
    assert (body["command"]["error_code"], body["command"]["error_details"]) == (
        "GenericError",
        {"why": "test"},
    )


async def test_an_answer_that_breaks_the_schema_is_502_failed(api, raw_ws, cp_id):
    async with raw_ws(cp_id) as cp:
        request = asyncio.create_task(command(api, cp_id, "Reset", {"type": "Soft"}))
        call = await cp.recv()
        assert call[0] == 2 and call[2] == "Reset" and call[3] == {"type": "Soft"}
        await cp.send([3, call[1], {"status": "Maybe"}])
        response = await request
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "failed"
    assert body["command"]["response"] == {"status": "Maybe"}
    assert "not a valid ResetResponse" in body["detail"]


async def test_commands_to_one_charge_point_are_sent_one_at_a_time(api, connect, cp_id):
    client = await connect(cp_id)
    client.delays["Reset"] = 0.5
    first, second = await asyncio.gather(
        command(api, cp_id, "Reset", {"type": "Soft"}), command(api, cp_id, "Reset", {"type": "Hard"})
    )
    assert (first.status_code, second.status_code) == (201, 201)
    rows = [
        row
        async for row in ChargePointCommand.objects.filter(charge_point__charge_point_id=cp_id).order_by(
            "sent_at"
        )
    ]
    assert len(rows) == 2
    assert rows[0].answered_at <= rows[1].sent_at


async def test_a_waiting_command_times_out_while_an_earlier_one_is_in_flight(api, connect, cp_id):
    client = await connect(cp_id)
    client.delays["Reset"] = 1.5
    slow = asyncio.create_task(command(api, cp_id, "Reset", {"type": "Soft"}, timeout=5))
    await client.wait_for_command("Reset")
    waiting = await command(api, cp_id, "ClearCache", timeout=0.3)
    assert waiting.status_code == 504
    assert "an earlier command to it was still in flight" in waiting.json()["detail"]
    assert waiting.json()["command"]["sent_at"] is None
    assert (await slow).status_code == 201
    assert [name for name, _ in client.received] == ["Reset"]


async def test_get_configuration_stores_the_keys_on_the_charge_point(api, connect, cp_id):
    await connect(cp_id)
    response = await command(api, cp_id, "GetConfiguration")
    assert response.status_code == 201
    keys = {
        k.key: (k.value, k.readonly)
        async for k in ConfigurationKey.objects.filter(charge_point__charge_point_id=cp_id)
    }
    assert keys == {
        "HeartbeatInterval": ("300", False),
        "MeterValueSampleInterval": ("60", False),
        "NumberOfConnectors": ("2", True),
    }
    detail = (await api.get(f"/charge-points/{cp_id}")).json()
    assert [k["key"] for k in detail["configuration_keys"]] == sorted(keys)


async def test_accepted_change_configuration_updates_the_stored_key(api, connect, cp_id):
    await connect(cp_id)
    await command(api, cp_id, "GetConfiguration")
    response = await command(api, cp_id, "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "90"})
    assert response.status_code == 201
    key = await ConfigurationKey.objects.aget(charge_point__charge_point_id=cp_id, key="HeartbeatInterval")
    assert key.value == "90"


async def test_stored_commands_are_listed_and_filterable(api, connect, cp_id):
    await connect(cp_id)
    await command(api, cp_id, "ClearCache")
    await command(api, cp_id, "Reset", {"type": "Soft"})
    listed = (await api.get("/commands", params={"charge_point": cp_id, "action": "Reset"})).json()
    assert listed["count"] == 1
    assert listed["results"][0]["request"] == {"type": "Soft"}
    assert (await ChargePoint.objects.aget(charge_point_id=cp_id)).is_connected


async def test_charge_point_may_send_its_own_messages_before_answering_a_command(api, raw_ws, cp_id):
    """The session's database work goes on while an API request waits for the answer."""
    async with raw_ws(cp_id) as cp:
        request = asyncio.create_task(
            command(api, cp_id, "RemoteStartTransaction", {"connectorId": 1, "idTag": "T1"})
        )
        remote_start = await cp.recv()
        assert remote_start[2] == "RemoteStartTransaction"
        answer = await cp.exchange(
            [
                2,
                "sn-1",
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Preparing"},
            ]
        )
        assert answer == [3, "sn-1", {}]
        await cp.send([3, remote_start[1], {"status": "Accepted"}])
        response = await request
    assert response.status_code == 201
    assert response.json()["status"] == "accepted"


async def test_body_that_is_not_json_is_400(api, connect, cp_id):
    await connect(cp_id)
    response = await api.post(
        f"/charge-points/{cp_id}/commands", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"


def test_default_set_up_joins_no_channel_layer_per_connection():
    from channels.layers import get_channel_layer

    from chargepoints.session.consumer import OCPPConsumer

    assert OCPPConsumer().channel_layer_alias is None
    assert get_channel_layer(OCPPConsumer().channel_layer_alias) is None


async def test_command_whose_caller_went_away_is_still_stored_with_its_answer(
    daphne_server, api_token, connect, cp_id
):
    import httpx

    client = await connect(cp_id)
    client.delays["Reset"] = 1
    async with httpx.AsyncClient(
        base_url=f"{daphne_server.http_url}/api/v1",
        headers={"Authorization": f"Bearer {api_token}"},
        timeout=0.3,
    ) as impatient:
        with pytest.raises(httpx.ReadTimeout):
            await command(impatient, cp_id, "Reset", {"type": "Soft"})

    async def answered() -> ChargePointCommand | None:
        stored = await ChargePointCommand.objects.aget(charge_point__charge_point_id=cp_id)
        return stored if stored.status != "pending" else None

    stored = await eventually(answered)
    assert (stored.status, stored.response) == ("accepted", {"status": "Accepted"})
