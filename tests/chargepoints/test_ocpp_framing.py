"""OCPP-J framing under bad input, over a real daphne server.

Each bad frame gets the OCPP 1.6 CALLERROR (with the message id when one can be
read) and the session stays up: the Heartbeat sent next is answered.
"""

from __future__ import annotations

import pytest

from chargepoints.models import Connector

pytestmark = pytest.mark.django_db(transaction=True)


async def assert_session_still_up(session) -> None:
    answer = await session.exchange([2, "hb-after", "Heartbeat", {}])
    assert answer[0:2] == [3, "hb-after"]
    assert answer[2]["currentTime"].endswith("Z")


async def test_text_that_is_not_json_gets_formation_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange("[2, 'not json'")
        assert answer == [4, "-1", "FormationViolation", "Message is not valid JSON", {}]
        await assert_session_still_up(session)


@pytest.mark.parametrize("frame", ['{"action": "Heartbeat"}', "42", '"text"', "[]"])
async def test_json_that_is_not_an_array_gets_formation_violation(raw_ws, cp_id, frame):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(frame)
        assert answer == [4, "-1", "FormationViolation", "Message is not an OCPP-J array", {}]
        await assert_session_still_up(session)


async def test_unknown_message_type_gets_formation_violation_with_its_id(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([7, "m-1", "Heartbeat", {}])
        assert answer == [4, "m-1", "FormationViolation", "Unknown message type 7", {}]
        await assert_session_still_up(session)


async def test_message_id_that_is_not_a_string_gets_formation_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, 17, "Heartbeat", {}])
        assert answer == [
            4,
            "-1",
            "FormationViolation",
            "Message id is missing or not a string",
            {},
        ]
        await assert_session_still_up(session)


async def test_call_with_wrong_number_of_elements_gets_formation_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "m-2", "Heartbeat"])
        assert answer == [4, "m-2", "FormationViolation", "A CALL has exactly 4 elements", {}]
        await assert_session_still_up(session)


async def test_payload_that_is_not_an_object_gets_formation_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "m-3", "Heartbeat", []])
        assert answer == [4, "m-3", "FormationViolation", "Payload must be a JSON object", {}]
        await assert_session_still_up(session)


async def test_over_long_message_id_gets_formation_violation(raw_ws, cp_id):
    long_id = "x" * 37
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, long_id, "Heartbeat", {}])
        assert answer == [
            4,
            long_id,
            "FormationViolation",
            "Message id is longer than 36 characters",
            {},
        ]
        await assert_session_still_up(session)


async def test_message_id_of_36_characters_is_accepted(raw_ws, cp_id):
    max_id = "y" * 36
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, max_id, "Heartbeat", {}])
        assert answer[0:2] == [3, max_id]


async def test_binary_frame_gets_formation_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(b'[2, "b-1", "Heartbeat", {}]')
        assert answer == [
            4,
            "-1",
            "FormationViolation",
            "OCPP-J uses text frames, not binary",
            {},
        ]
        await assert_session_still_up(session)


async def test_missing_required_field_gets_protocol_error(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "p-1", "BootNotification", {"chargePointVendor": "Acme"}])
        assert answer[0:3] == [4, "p-1", "ProtocolError"]
        assert "chargePointModel" in answer[3]
        assert answer[4]["field"] == "payload"
        await assert_session_still_up(session)


async def test_mistyped_field_gets_type_constraint_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(
            [
                2,
                "t-1",
                "StatusNotification",
                {"connectorId": "1", "errorCode": "NoError", "status": "Available"},
            ]
        )
        assert answer[0:3] == [4, "t-1", "TypeConstraintViolation"]
        assert answer[4]["field"] == "connectorId"
        await assert_session_still_up(session)


async def test_over_long_string_field_gets_type_constraint_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "t-2", "Authorize", {"idTag": "T" * 21}])
        assert answer[0:3] == [4, "t-2", "TypeConstraintViolation"]
        assert answer[4]["field"] == "idTag"
        await assert_session_still_up(session)


async def test_value_outside_an_enumeration_gets_property_constraint_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange(
            [
                2,
                "e-1",
                "StatusNotification",
                {"connectorId": 1, "errorCode": "NoError", "status": "Sleeping"},
            ]
        )
        assert answer[0:3] == [4, "e-1", "PropertyConstraintViolation"]
        assert answer[4]["field"] == "status"
        await assert_session_still_up(session)


async def test_field_the_schema_does_not_define_gets_formation_violation(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "f-1", "Heartbeat", {"uptime": 5}])
        assert answer[0:3] == [4, "f-1", "FormationViolation"]
        await assert_session_still_up(session)


async def test_unknown_action_gets_not_implemented(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "u-1", "MakeCoffee", {}])
        assert answer == [
            4,
            "u-1",
            "NotImplemented",
            "MakeCoffee is not an OCPP 1.6 action",
            {"action": "MakeCoffee"},
        ]
        await assert_session_still_up(session)


async def test_central_system_action_sent_by_charge_point_gets_not_supported(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        answer = await session.exchange([2, "n-1", "RemoteStartTransaction", {"idTag": "TAG"}])
        assert answer == [
            4,
            "n-1",
            "NotSupported",
            "RemoteStartTransaction is not supported by the Central System",
            {"action": "RemoteStartTransaction"},
        ]
        await assert_session_still_up(session)


async def test_callresult_nobody_waits_for_is_logged_and_dropped(raw_ws, cp_id, daphne_server):
    async with raw_ws(cp_id) as session:
        await session.send([3, "stray-result-1", {"status": "Accepted"}])
        await session.send([4, "stray-error-1", "GenericError", "", {}])
        # Nothing is sent back for them: the next answer is the Heartbeat's.
        await assert_session_still_up(session)
    for unique_id in ("stray-result-1", "stray-error-1"):
        assert f"{cp_id}: answer {unique_id} matches no pending call; dropped" in (daphne_server.log())


async def test_many_bad_frames_in_a_row_never_end_the_session(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        for frame in ["}", b"\x00\x01", "[2]", "[9, 1]", '[2, "a", 5, {}]']:
            answer = await session.exchange(frame)
            assert answer[0] == 4
            assert answer[2] == "FormationViolation"
        await assert_session_still_up(session)


async def test_calls_are_answered_in_the_order_they_were_sent(raw_ws, cp_id):
    async with raw_ws(cp_id) as session:
        for n in range(5):
            await session.send([2, f"o-{n}", "Heartbeat", {}])
        answers = [await session.recv() for _ in range(5)]
        assert [a[1] for a in answers] == [f"o-{n}" for n in range(5)]


async def test_session_survives_client_that_closes_without_waiting(daphne_server, raw_ws, cp_id, connect):
    async with raw_ws(cp_id) as session:
        await session.send([2, "c-1", "Heartbeat", {}])
    await daphne_server.wait_for_log(f"{cp_id} disconnected")
    # The server is still serving new sessions of the same charge point.
    client = await connect(cp_id)
    assert (await client.boot()).status == "Accepted"


async def test_lenient_mode_accepts_fields_the_schema_does_not_define(start_daphne, raw_ws, cp_id):
    server = start_daphne(LEVITY_OCPP_LENIENT="true")
    async with raw_ws(cp_id, server=server) as session:
        answer = await session.exchange(
            [
                2,
                "l-1",
                "StatusNotification",
                {
                    "connectorId": 1,
                    "errorCode": "NoError",
                    "status": "Available",
                    "vendorUptime": 5,
                },
            ]
        )
        assert answer == [3, "l-1", {}]
        connector = await Connector.objects.aget(charge_point__charge_point_id=cp_id)
        assert connector.status == "Available"
        # Lenient is about extra fields only: a missing field is still refused.
        missing = await session.exchange([2, "l-2", "Authorize", {}])
        assert missing[0:3] == [4, "l-2", "ProtocolError"]
