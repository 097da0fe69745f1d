"""Security profiles 1-3 over real ws:// and wss:// connections to a real daphne.

Certificates are made by the test (tests/chargepoints/pki.py). The TLS server has
no trusted proxy; the proxy server trusts 127.0.0.1, as a server behind nginx would.
"""

from __future__ import annotations

import ssl
from urllib.parse import quote

import pytest
import websockets
from asgiref.sync import sync_to_async
from ocpp.v16 import call
from websockets.typing import Subprotocol

from chargepoints import security
from chargepoints.models import ChargePoint
from chargepoints.session import authentication
from tests.conftest import DaphneServer, server_env
from tests.ocpp_client import OCPPClient

from .pki import HASHER_WAIT, PKI, TLSDaphneServer, basic_auth

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(django_db_setup, test_db_path, tmp_path_factory, pki):
    server = TLSDaphneServer(
        server_env(test_db_path, LEVITY_CLIENT_CA_FILE=str(pki.ca_file)),
        tmp_path_factory.mktemp("logs") / "daphne-tls.log",
        pki.issue("localhost", server=True),
        pki.ca_file,
    ).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def proxied_server(django_db_setup, test_db_path, tmp_path_factory, pki):
    """A daphne that believes the headers of a proxy at 127.0.0.1."""
    server = DaphneServer(
        server_env(
            test_db_path, LEVITY_CLIENT_CA_FILE=str(pki.ca_file), LEVITY_TRUSTED_PROXIES="127.0.0.1/32"
        ),
        tmp_path_factory.mktemp("logs") / "daphne-proxied.log",
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def clients():
    """Open OCPP clients with connect options (closed after the test)."""
    opened: list[OCPPClient] = []

    async def open_client(url: str, **kwargs) -> OCPPClient:
        client = await OCPPClient.open(url, open_timeout=HASHER_WAIT, **kwargs)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.close()


async def provision(cp_id: str, profile: int) -> str | None:
    return await sync_to_async(security.set_security_profile)(cp_id, profile, create=True)


async def refused(url: str, **kwargs) -> websockets.InvalidStatus:
    with pytest.raises(websockets.InvalidStatus) as refusal:
        await websockets.connect(
            url, subprotocols=[Subprotocol("ocpp1.6")], open_timeout=HASHER_WAIT, **kwargs
        )
    return refusal.value


async def assert_never_connected(cp_id: str) -> None:
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert (row.is_connected, row.connected_at, row.remote_address) == (False, None, "")


# --- profile 1 -----------------------------------------------------------------------


async def test_profile_1_charge_point_with_its_password_connects(daphne_server, clients, cp_id):
    password = await provision(cp_id, 1)
    client = await clients(daphne_server.ws_url(cp_id), additional_headers=basic_auth(cp_id, password))
    assert (await client.boot()).status == "Accepted"
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.is_connected
    assert row.password_hash.startswith("pbkdf2_sha256$") and password not in row.password_hash


async def test_profile_1_wrong_password_is_refused_with_401_before_anything_is_stored(daphne_server, cp_id):
    await provision(cp_id, 1)
    refusal = await refused(daphne_server.ws_url(cp_id), additional_headers=basic_auth(cp_id, "0" * 40))
    assert refusal.response.status_code == 401
    assert refusal.response.headers["WWW-Authenticate"] == 'Basic realm="OCPP"'
    await assert_never_connected(cp_id)
    log = await daphne_server.wait_for_log(f"{cp_id}: refused from 127.0.0.1:")
    assert f"{cp_id}: refused from 127.0.0.1:" in log and "wrong password" in log


async def test_profile_1_connect_without_credentials_is_refused_with_401(daphne_server, cp_id):
    await provision(cp_id, 1)
    assert (await refused(daphne_server.ws_url(cp_id))).response.status_code == 401
    await assert_never_connected(cp_id)
    assert "no HTTP Basic credentials" in await daphne_server.wait_for_log(f"{cp_id}: refused")


async def test_profile_1_username_must_be_the_charge_point_id(daphne_server, cp_id):
    password = await provision(cp_id, 1)
    other = await provision(cp_id + "-other", 1)
    assert other
    refusal = await refused(
        daphne_server.ws_url(cp_id), additional_headers=basic_auth(cp_id + "-other", password)
    )
    assert refusal.response.status_code == 401
    await assert_never_connected(cp_id)


@pytest.mark.parametrize("profile", [0, 1])
async def test_profiles_0_and_1_work_over_wss_too(tls_server, pki, clients, cp_id, profile):
    password = await provision(cp_id, profile)
    headers = basic_auth(cp_id, password) if password else {}
    client = await clients(tls_server.wss_url(cp_id), additional_headers=headers, ssl=pki.client_context())
    assert (await client.boot()).status == "Accepted"


async def test_profile_1_wrong_password_over_wss_is_refused_with_401(tls_server, pki, cp_id):
    await provision(cp_id, 1)
    refusal = await refused(
        tls_server.wss_url(cp_id), additional_headers=basic_auth(cp_id, "0" * 40), ssl=pki.client_context()
    )
    assert refusal.response.status_code == 401
    await assert_never_connected(cp_id)


# --- profile 2 -----------------------------------------------------------------------


async def test_profile_2_over_wss_with_its_password_connects(tls_server, pki, clients, cp_id):
    password = await provision(cp_id, 2)
    client = await clients(
        tls_server.wss_url(cp_id), additional_headers=basic_auth(cp_id, password), ssl=pki.client_context()
    )
    assert (await client.boot()).status == "Accepted"


async def test_profile_2_over_plain_ws_is_refused_even_with_its_password(tls_server, cp_id):
    password = await provision(cp_id, 2)
    refusal = await refused(tls_server.ws_url(cp_id), additional_headers=basic_auth(cp_id, password))
    assert refusal.response.status_code == 403
    await assert_never_connected(cp_id)
    assert "needs TLS" in await tls_server.wait_for_log(f"{cp_id}: refused")


async def test_profile_2_behind_a_trusted_proxy_that_says_https_connects(proxied_server, clients, cp_id):
    password = await provision(cp_id, 2)
    client = await clients(
        proxied_server.ws_url(cp_id),
        additional_headers={**basic_auth(cp_id, password), "X-Forwarded-Proto": "https"},
    )
    assert (await client.boot()).status == "Accepted"


async def test_profile_2_forwarded_proto_from_an_untrusted_address_is_ignored(tls_server, cp_id):
    password = await provision(cp_id, 2)
    refusal = await refused(
        tls_server.ws_url(cp_id),
        additional_headers={**basic_auth(cp_id, password), "X-Forwarded-Proto": "https"},
    )
    assert refusal.response.status_code == 403
    await assert_never_connected(cp_id)


# --- profile 3 -----------------------------------------------------------------------


async def test_profile_3_with_a_certificate_naming_it_connects(tls_server, pki, clients, cp_id):
    await provision(cp_id, 3)
    client = await clients(tls_server.wss_url(cp_id), ssl=pki.client_context(pki.issue(cp_id)))
    assert (await client.boot()).status == "Accepted"


async def test_profile_3_certificate_of_another_ca_fails_the_tls_handshake(tls_server, pki, tmp_path, cp_id):
    await provision(cp_id, 3)
    other = PKI(tmp_path, "Another CA")
    context = pki.client_context(other.issue(cp_id))
    with pytest.raises((ssl.SSLError, OSError, websockets.InvalidHandshake, websockets.ConnectionClosed)):
        async with websockets.connect(
            tls_server.wss_url(cp_id), subprotocols=[Subprotocol("ocpp1.6")], ssl=context
        ) as ws:
            await ws.recv()
    await assert_never_connected(cp_id)


async def test_profile_3_expired_certificate_fails_the_tls_handshake(tls_server, pki, cp_id):
    await provision(cp_id, 3)
    context = pki.client_context(pki.issue(cp_id, expired=True))
    with pytest.raises((ssl.SSLError, OSError, websockets.InvalidHandshake, websockets.ConnectionClosed)):
        async with websockets.connect(
            tls_server.wss_url(cp_id), subprotocols=[Subprotocol("ocpp1.6")], ssl=context
        ) as ws:
            await ws.recv()
    await assert_never_connected(cp_id)


async def test_profile_3_certificate_of_another_charge_point_is_refused_with_401(tls_server, pki, cp_id):
    await provision(cp_id, 3)
    refusal = await refused(tls_server.wss_url(cp_id), ssl=pki.client_context(pki.issue("CP-SOMEONE-ELSE")))
    assert refusal.response.status_code == 401
    await assert_never_connected(cp_id)
    assert "'CP-SOMEONE-ELSE' is not the charge point id" in await tls_server.wait_for_log(
        f"{cp_id}: refused"
    )


async def test_profile_3_over_wss_without_a_certificate_is_refused_with_401(tls_server, pki, cp_id):
    await provision(cp_id, 3)
    refusal = await refused(tls_server.wss_url(cp_id), ssl=pki.client_context())
    assert refusal.response.status_code == 401
    await assert_never_connected(cp_id)


async def test_profile_3_over_plain_ws_is_refused(tls_server, cp_id):
    await provision(cp_id, 3)
    assert (await refused(tls_server.ws_url(cp_id))).response.status_code == 403
    await assert_never_connected(cp_id)


async def test_profile_3_password_does_not_replace_the_certificate(tls_server, pki, cp_id):
    await provision(cp_id, 3)
    password = await sync_to_async(security.set_password)(cp_id)
    refusal = await refused(
        tls_server.wss_url(cp_id), ssl=pki.client_context(), additional_headers=basic_auth(cp_id, password)
    )
    assert refusal.response.status_code == 401


def proxy_headers(certificate_pem: str, verify: str = "SUCCESS") -> dict[str, str]:
    """What nginx forwards: $ssl_client_escaped_cert and $ssl_client_verify."""
    return {
        "X-Forwarded-Proto": "https",
        "X-SSL-Client-Cert": quote(certificate_pem, safe=""),
        "X-SSL-Client-Verify": verify,
    }


async def test_profile_3_certificate_forwarded_by_a_trusted_proxy_connects(
    proxied_server, pki, clients, cp_id
):
    await provision(cp_id, 3)
    client = await clients(
        proxied_server.ws_url(cp_id), additional_headers=proxy_headers(pki.issue(cp_id).pem())
    )
    assert (await client.boot()).status == "Accepted"


async def test_profile_3_certificate_the_proxy_did_not_verify_is_refused(proxied_server, pki, cp_id):
    await provision(cp_id, 3)
    headers = proxy_headers(pki.issue(cp_id).pem(), verify="FAILED:certificate has expired")
    assert (
        await refused(proxied_server.ws_url(cp_id), additional_headers=headers)
    ).response.status_code == 401
    await assert_never_connected(cp_id)


async def test_profile_3_forwarded_certificate_of_another_ca_is_refused(proxied_server, pki, tmp_path, cp_id):
    await provision(cp_id, 3)
    headers = proxy_headers(PKI(tmp_path, "Another CA").issue(cp_id).pem())
    assert (
        await refused(proxied_server.ws_url(cp_id), additional_headers=headers)
    ).response.status_code == 401
    assert "not issued by a CA of LEVITY_CLIENT_CA_FILE" in await proxied_server.wait_for_log(
        f"{cp_id}: refused"
    )


async def test_profile_3_forwarded_expired_certificate_is_refused(proxied_server, pki, cp_id):
    await provision(cp_id, 3)
    headers = proxy_headers(pki.issue(cp_id, expired=True).pem())
    assert (
        await refused(proxied_server.ws_url(cp_id), additional_headers=headers)
    ).response.status_code == 401
    assert "is not valid now" in await proxied_server.wait_for_log(f"{cp_id}: refused")


async def test_profile_3_certificate_header_from_an_untrusted_address_is_ignored(tls_server, pki, cp_id):
    await provision(cp_id, 3)
    headers = proxy_headers(pki.issue(cp_id).pem())
    assert (await refused(tls_server.ws_url(cp_id), additional_headers=headers)).response.status_code == 403
    await assert_never_connected(cp_id)


# --- session takeover ----------------------------------------------------------------------


async def test_refused_takeover_leaves_the_live_session_untouched(daphne_server, clients, cp_id):
    password = await provision(cp_id, 1)
    live = await clients(daphne_server.ws_url(cp_id), additional_headers=basic_auth(cp_id, password))
    assert (await live.boot()).status == "Accepted"
    refusal = await refused(daphne_server.ws_url(cp_id), additional_headers=basic_auth(cp_id, "f" * 40))
    assert refusal.response.status_code == 401
    assert (await live.call(call.Heartbeat())).current_time
    assert live._connection.close_code is None
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert row.is_connected


async def test_authenticated_takeover_replaces_the_session(daphne_server, clients, cp_id):
    password = await provision(cp_id, 1)
    first = await clients(daphne_server.ws_url(cp_id), additional_headers=basic_auth(cp_id, password))
    assert (await first.boot()).status == "Accepted"
    second = await clients(daphne_server.ws_url(cp_id), additional_headers=basic_auth(cp_id, password))
    assert await first.closed_by_server(timeout=15) == 4000
    assert (await second.boot()).status == "Accepted"


async def test_verified_password_is_remembered_so_reconnects_skip_the_hasher(monkeypatch, cp_id):
    password = await provision(cp_id, 1)
    credentials = (await sync_to_async(security.credentials_of)([cp_id]))[cp_id]
    hashed: list[str] = []
    real = security.password_matches
    monkeypatch.setattr(security, "password_matches", lambda p, e: hashed.append(p) or real(p, e))
    authentication.forget_verified_passwords()
    scope = {"headers": [(b"authorization", basic_auth(cp_id, password)["Authorization"].encode())]}
    assert await authentication.check_basic(scope, credentials) == ""
    assert await authentication.check_basic(scope, credentials) == ""
    assert hashed == [password]
    wrong = {"headers": [(b"authorization", basic_auth(cp_id, "0" * 40)["Authorization"].encode())]}
    for _ in range(2):
        assert isinstance(await authentication.check_basic(wrong, credentials), authentication.Refusal)
    assert hashed == [password, "0" * 40, "0" * 40]  # a wrong password is never remembered


@pytest.mark.parametrize("cp_id", ["CP:01@site", "CP-PLAIN"])
async def test_basic_username_may_contain_a_colon_as_charge_point_ids_may(cp_id):
    password = await provision(cp_id, 1)
    credentials = (await sync_to_async(security.credentials_of)([cp_id]))[cp_id]

    def scope(username: str, secret: str) -> dict:
        return {"headers": [(b"authorization", basic_auth(username, secret)["Authorization"].encode())]}

    assert await authentication.check_basic(scope(cp_id, password), credentials) == ""
    wrong_user = await authentication.check_basic(scope("CP", password), credentials)
    assert isinstance(wrong_user, authentication.Refusal) and "username 'CP'" in wrong_user.reason
    assert isinstance(
        await authentication.check_basic(scope(cp_id, password[:-1]), credentials), authentication.Refusal
    )


async def test_a_forwarded_address_does_not_make_a_client_a_trusted_proxy(
    django_db_setup, test_db_path, tmp_path, cp_id
):
    """With daphne's --proxy-headers, X-Forwarded-For sets the logged address, never the trust."""
    server = DaphneServer(
        server_env(test_db_path, LEVITY_TRUSTED_PROXIES="10.9.9.9"), tmp_path / "daphne.log"
    )
    server.argv.insert(-1, "--proxy-headers")
    server.start()
    try:
        password = await provision(cp_id, 2)
        headers = {**basic_auth(cp_id, password), "X-Forwarded-Proto": "https", "X-Forwarded-For": "10.9.9.9"}
        assert (await refused(server.ws_url(cp_id), additional_headers=headers)).response.status_code == 403
        assert f"{cp_id}: refused from 10.9.9.9:" in await server.wait_for_log(f"{cp_id}: refused")
    finally:
        server.stop()
