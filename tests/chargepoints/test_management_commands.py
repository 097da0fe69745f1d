"""The manage.py remote-operation commands, run as subprocesses against a real daphne."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from chargepoints.models import ApiToken, ChargePoint, ChargePointCommand
from tests.conftest import PROJECT_DIR, eventually, free_port, server_env

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def manage(daphne_server, test_db_path):
    """Run `manage.py ARGS...` against the test server; returns (exit code, stdout, stderr)."""

    async def run(*args: str, api_url: str | None = None, **env_overrides: str) -> tuple[int, str, str]:
        env = server_env(test_db_path, LEVITY_API_URL=api_url or daphne_server.http_url, **env_overrides)
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "manage.py",
            *args,
            cwd=PROJECT_DIR,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None  # communicate() waited for the exit
        return process.returncode, out.decode(), err.decode()

    return run


@pytest.mark.once  # no database: the command list only
def test_manage_py_help_lists_the_remote_commands():
    out = subprocess.run(
        [sys.executable, "manage.py", "help"], cwd=PROJECT_DIR, capture_output=True, text=True, check=True
    ).stdout
    for name in (
        "remote_start",
        "remote_stop",
        "reset",
        "unlock",
        "get_configuration",
        "change_configuration",
        "trigger_message",
        "ocpp_call",
    ):
        assert f"    {name}\n" in out


async def test_remote_start_sends_the_command_prints_the_answer_and_exits_0(manage, connect, cp_id):
    client = await connect(cp_id)
    code, out, err = await manage("remote_start", cp_id, "--connector-id", "2", "--id-tag", "RFID9")
    assert (code, err) == (0, "")
    assert '"status": "Accepted"' in out
    assert await client.wait_for_command("RemoteStartTransaction") == {
        "id_tag": "RFID9",
        "connector_id": 2,
    }
    stored = await ChargePointCommand.objects.aget(charge_point__charge_point_id=cp_id)
    assert stored.requested_by.startswith("cli:") and stored.status == "accepted"
    assert not await ApiToken.objects.aexists()  # the one-off token is gone


@pytest.mark.parametrize(
    ("args", "action", "received"),
    [
        (["remote_stop", "{cp}", "17"], "RemoteStopTransaction", {"transaction_id": 17}),
        (["reset", "{cp}", "--type", "Hard"], "Reset", {"type": "Hard"}),
        (["unlock", "{cp}", "2"], "UnlockConnector", {"connector_id": 2}),
        (
            ["change_configuration", "{cp}", "HeartbeatInterval", "60"],
            "ChangeConfiguration",
            {"key": "HeartbeatInterval", "value": "60"},
        ),
        (
            ["trigger_message", "{cp}", "StatusNotification", "--connector-id", "1"],
            "TriggerMessage",
            {"requested_message": "StatusNotification", "connector_id": 1},
        ),
        (
            ["ocpp_call", "{cp}", "DataTransfer", '{"vendorId": "com.acme", "data": "x"}'],
            "DataTransfer",
            {"vendor_id": "com.acme", "data": "x"},
        ),
    ],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
async def test_command_sends_its_payload_and_exits_0(manage, connect, cp_id, args, action, received):
    client = await connect(cp_id)
    code, _out, err = await manage(*[a.replace("{cp}", cp_id) for a in args])
    assert (code, err) == (0, "")
    assert await client.wait_for_command(action) == received


async def test_ocpp_call_sends_a_security_extension_command_and_prints_the_answer(manage, connect, cp_id):
    client = await connect(cp_id)
    code, out, err = await manage(
        "ocpp_call",
        cp_id,
        "GetLog",
        '{"logType": "SecurityLog", "requestId": 3, "log": {"remoteLocation": "ftp://logs.example.com/"}}',
    )
    assert (code, err) == (0, "")
    assert '"filename": "security.log"' in out
    assert await client.wait_for_command("GetLog") == {
        "log_type": "SecurityLog",
        "request_id": 3,
        "log": {"remote_location": "ftp://logs.example.com/"},
    }
    stored = await ChargePointCommand.objects.aget(charge_point__charge_point_id=cp_id)
    assert (stored.action, stored.status, stored.response_status) == ("GetLog", "accepted", "Accepted")


async def test_ocpp_call_refuses_an_extended_trigger_message_outside_its_enum_exit_2(manage, connect, cp_id):
    await connect(cp_id)
    code, _, err = await manage(
        "ocpp_call", cp_id, "ExtendedTriggerMessage", '{"requestedMessage": "DiagnosticsStatusNotification"}'
    )
    assert code == 2
    assert "requestedMessage must be one of" in err and len(err.strip().splitlines()) == 1


async def test_get_configuration_prints_the_keys(manage, connect, cp_id):
    await connect(cp_id)
    code, out, _ = await manage("get_configuration", cp_id, "NumberOfConnectors", "Nope")
    assert code == 0
    assert out.splitlines() == ["NumberOfConnectors = 2  (read-only)", "Nope: unknown to the charge point"]


async def test_rejected_command_exits_1_with_a_one_line_reason(manage, connect, cp_id):
    client = await connect(cp_id)
    client.answers["Reset"] = {"status": "Rejected"}
    code, out, err = await manage("reset", cp_id)
    assert code == 1
    assert '"status": "Rejected"' in out
    assert err == f"CommandError: {cp_id} did not accept Reset: status Rejected\n"


async def test_offline_charge_point_exits_3(manage, connect, cp_id):
    await (await connect(cp_id)).close()

    async def offline() -> bool:
        return not (await ChargePoint.objects.aget(charge_point_id=cp_id)).is_connected

    await eventually(offline)
    code, _, err = await manage("reset", cp_id)
    assert (code, err) == (3, f"CommandError: {cp_id} is not connected\n")


async def test_unknown_charge_point_exits_3(manage):
    code, _, err = await manage("unlock", "NO-SUCH-CP", "1")
    assert (code, err) == (3, "CommandError: No charge point with id 'NO-SUCH-CP'\n")


async def test_no_answer_in_time_exits_4(manage, connect, cp_id):
    client = await connect(cp_id)
    client.delays["UnlockConnector"] = 3
    code, _, err = await manage("unlock", cp_id, "1", "--timeout", "0.5")
    assert (code, err) == (4, "CommandError: No answer within 0.5 s\n")


async def test_unreachable_server_exits_5(manage, cp_id):
    url = f"http://127.0.0.1:{free_port()}"
    code, _, err = await manage("reset", cp_id, api_url=url)
    assert code == 5
    assert err.startswith(f"CommandError: Cannot reach the Levity server at {url}: ")
    assert err.count("\n") == 1


@pytest.mark.once  # refused before the command opens the database or the server is asked
async def test_invalid_json_payload_exits_2(manage, cp_id):
    code, _, err = await manage("ocpp_call", cp_id, "DataTransfer", "{nope")
    assert code == 2
    assert err.startswith("CommandError: The payload is not JSON: ")


async def test_invalid_payload_exits_2_with_the_validation_message(manage, connect, cp_id):
    await connect(cp_id)
    code, _, err = await manage("ocpp_call", cp_id, "ChangeAvailability", '{"connectorId": 1}')
    assert code == 2
    assert (
        err
        == "CommandError: Invalid ChangeAvailability payload: Required field missing: data must contain ['type'] properties\n"
    )


async def test_levity_api_token_is_used_instead_of_a_one_off_token(manage, connect, cp_id, api_token):
    await connect(cp_id)
    code, _, err = await manage("ocpp_call", cp_id, "ClearCache", LEVITY_API_TOKEN=api_token)
    assert (code, err) == (0, "")
    stored = await ChargePointCommand.objects.aget(charge_point__charge_point_id=cp_id)
    assert stored.requested_by == "token:tests"
    assert await ApiToken.objects.acount() == 1


async def test_refused_token_exits_5(manage, cp_id):
    code, _, err = await manage("reset", cp_id, LEVITY_API_TOKEN="lvt_wrong")
    assert (code, err) == (5, "CommandError: Invalid, expired or revoked token.\n")
