"""Sessions served directly -- ``LevityChargePoint.start()`` on a plain
``websockets`` connection -- are registered like the consumer's: commands reach them,
and at disconnect they are forgotten and the charge point is recorded offline."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from chargepoints.models import ChargePoint, CommandStatus
from chargepoints.ocpp16.session import LevityChargePoint
from chargepoints.session import commands, registry
from chargepoints.session.base import Refused
from plugins.testing import FakeConnection, create_test_charge_point
from tests.ocpp_client import OCPPClient

pytestmark = pytest.mark.django_db(transaction=True)


async def test_command_reaches_a_charge_point_served_on_a_websockets_connection(third_way, cp_id):
    client = await OCPPClient.open(third_way.url(cp_id))
    try:
        await client.boot()
        command = await commands.send_command(
            cp_id, "Reset", {"type": "Soft"}, timeout=10, requested_by="test"
        )
        assert (command.status, command.response_status) == (CommandStatus.ACCEPTED, "Accepted")
        assert await client.wait_for_command("Reset") == {"type": "Soft"}
    finally:
        await client.close()


async def test_websockets_session_is_forgotten_and_offline_after_disconnect(third_way, cp_id):
    client = await OCPPClient.open(third_way.url(cp_id))
    await client.boot()
    assert registry.get(cp_id) is not None
    await client.close()
    await asyncio.wait_for(third_way.ended[cp_id].wait(), 5)

    assert registry.get(cp_id) is None
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert not row.is_connected and row.disconnected_at is not None
    command = await commands.send_command(cp_id, "Reset", {"type": "Soft"}, timeout=5)
    assert command.status == CommandStatus.OFFLINE


async def test_an_unknown_charge_point_is_refused_when_auto_registration_is_off(third_way, cp_id, settings):
    settings.LEVITY_AUTO_REGISTER = False
    connection = await websockets.connect(third_way.url(cp_id), subprotocols=["ocpp1.6"])
    await asyncio.wait_for(third_way.ended[cp_id].wait(), 10)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(connection.recv(), 10)
    assert closed.value.rcvd.code == registry.CLOSE_REFUSED
    assert not await ChargePoint.objects.filter(charge_point_id=cp_id).aexists()
    assert registry.get(cp_id) is None


async def test_a_known_charge_point_is_served_when_auto_registration_is_off(third_way, cp_id, settings):
    settings.LEVITY_AUTO_REGISTER = False
    await ChargePoint.objects.acreate(charge_point_id=cp_id)
    client = await OCPPClient.open(third_way.url(cp_id))
    try:
        assert (await client.boot()).status == "Accepted"
        assert (await ChargePoint.objects.aget(charge_point_id=cp_id)).is_connected
    finally:
        await client.close()


def _session(cp_id: str) -> LevityChargePoint:
    connection = FakeConnection()
    session = LevityChargePoint(cp_id, connection)
    connection.charge_point = session
    return session


async def test_a_session_without_an_upgrade_refuses_an_unknown_id_the_default_profile_asks_proof_of(
    cp_id, settings
):
    settings.LEVITY_DEFAULT_SECURITY_PROFILE = 1
    with pytest.raises(Refused):
        await _session(cp_id).ensure_registered()
    assert not await ChargePoint.objects.filter(charge_point_id=cp_id).aexists()


async def test_a_session_without_an_upgrade_refuses_a_charge_point_under_a_password_profile(cp_id):
    await ChargePoint.objects.acreate(charge_point_id=cp_id, security_profile=1)
    with pytest.raises(Refused):
        await _session(cp_id).ensure_registered()
    assert not (await ChargePoint.objects.aget(charge_point_id=cp_id)).is_connected


async def test_test_charge_points_are_made_whatever_the_default_profile(cp_id, settings):
    settings.LEVITY_DEFAULT_SECURITY_PROFILE = 1
    charge_point = await create_test_charge_point(cp_id)
    try:
        row = await ChargePoint.objects.aget(charge_point_id=cp_id)
        assert (row.pk, row.is_connected) == (charge_point.charge_point_pk, True)
    finally:
        await charge_point.shutdown()
