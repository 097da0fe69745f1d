"""Every API error is a JSON error, over a real daphne server: hostile bodies, bodies too
large, and a charge point's malformed answer to a command."""

from __future__ import annotations

import asyncio

import pytest

from chargepoints.models import ChargePointCommand, CommandStatus
from tests.conftest import eventually

pytestmark = pytest.mark.django_db(transaction=True)


def commands_url(cp_id: str) -> str:
    return f"/charge-points/{cp_id}/commands"


async def test_a_deeply_nested_body_is_a_json_400_not_a_500(api, connect, cp_id, daphne_server):
    await connect(cp_id)
    body = '{"action": "Reset", "payload": ' + "[" * 50_000 + "]" * 50_000 + "}"
    response = await api.post(commands_url(cp_id), content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "parse_error"
    assert "RecursionError" not in daphne_server.log()


async def test_a_body_nested_beyond_the_configured_depth_is_refused(api, connect, cp_id):
    await connect(cp_id)
    payload = {"type": "Soft"}
    for _ in range(40):  # LEVITY_API_JSON_MAX_DEPTH is 32
        payload = {"x": payload}
    response = await api.post(commands_url(cp_id), json={"action": "Reset", "payload": payload})
    assert response.status_code == 400
    assert response.json() == {
        "error": "parse_error",
        "detail": "JSON parse error - nested deeper than 32 levels",
    }


async def test_a_body_nested_within_the_limit_is_read(api, connect, cp_id):
    await connect(cp_id)
    response = await api.post(commands_url(cp_id), json={"action": "Reset", "payload": {"type": "Soft"}})
    assert response.status_code == 201


async def test_an_oversized_body_django_refuses_is_a_json_413(start_daphne, api_token, cp_id):
    """Past Django's DATA_UPLOAD_MAX_MEMORY_SIZE (the server's own refusal by declared
    size, LEVITY_MAX_REQUEST_BODY_BYTES, is off here; it is tested in
    tests/levity_site/test_protocol_limits.py)."""
    import httpx

    server = start_daphne(LEVITY_MAX_REQUEST_BODY_BYTES="0")
    big = '{"action": "DataTransfer", "payload": {"vendorId": "x", "data": "' + "a" * 3_000_000 + '"}}'
    async with httpx.AsyncClient(
        base_url=f"{server.http_url}/api/v1", headers={"Authorization": f"Bearer {api_token}"}, timeout=30
    ) as api:
        response = await api.post(
            commands_url(cp_id), content=big, headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == "request_too_large"
    assert "Traceback" not in response.text


async def test_an_unknown_api_path_is_a_json_404(api):
    response = await api.get("/no-such-endpoint/")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


async def test_a_non_api_path_keeps_djangos_html_404(daphne_server):
    import httpx

    async with httpx.AsyncClient() as client:
        response = await client.get(f"{daphne_server.http_url}/no-such-page/")
    assert response.status_code == 404
    assert "text/html" in response.headers["Content-Type"]


async def test_an_answer_without_status_is_recorded_as_an_invalid_answer(api, raw_ws, cp_id, daphne_server):
    async with raw_ws(cp_id) as cp:
        request = asyncio.create_task(
            api.post(commands_url(cp_id), json={"action": "Reset", "payload": {"type": "Soft"}})
        )
        call = await cp.recv()
        await cp.send([3, call[1], {}])  # a CALLRESULT missing its required `status`
        response = await request
    assert response.status_code == 502
    body = response.json()
    assert body["error"] == "failed"
    assert body["detail"].startswith("The answer is not a valid ResetResponse: Required field missing")
    assert "TypeError" not in response.text
    command = await ChargePointCommand.objects.aget(pk=body["command"]["id"])
    assert (command.status, command.response, command.error_code) == (
        CommandStatus.FAILED,
        {},
        "ProtocolError",
    )
    assert command.answered_at is not None
    assert "TypeError" not in daphne_server.log()


async def test_a_plugin_call_gets_an_ocpp_error_for_an_invalid_answer(third_way, cp_id):
    """charge_point.call(): the same check, raised as an OCPPError (InvalidAnswer).
    (``skip_schema_validation=True`` skips it, as in the `ocpp` package.)"""
    import websockets
    from ocpp.exceptions import OCPPError
    from ocpp.v16 import call

    from chargepoints.ocpp16 import protocol
    from chargepoints.session import registry

    async with websockets.connect(third_way.url(cp_id), subprotocols=["ocpp1.6"]) as ws:
        session = await eventually(lambda: registry.get(cp_id))
        sent = asyncio.create_task(session.call(call.Reset(type="Soft"), suppress=False))
        frame = await asyncio.wait_for(ws.recv(), 10)
        import json

        await ws.send(json.dumps([3, json.loads(frame)[1], {"status": 7}]))
        with pytest.raises(OCPPError) as caught:
            await sent
    assert isinstance(caught.value, protocol.InvalidAnswer)
    assert caught.value.code == "TypeConstraintViolation"
