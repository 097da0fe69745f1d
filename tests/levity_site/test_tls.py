"""Levity's TLS endpoint (``levity-tls:``, levity_site/tls.py) with real certificates
(tests/chargepoints/pki.py) and real TLS clients: failed handshakes are logged with
the client's address and counted by the failed-handshake throttle; client
certificates issued by an intermediate CA verify; a CRL (LEVITY_TLS_CRL) refuses a
revoked certificate, in the handshake and behind a trusted proxy, and is re-read
when its file changes.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path
from urllib.parse import quote

import pytest
import websockets
from asgiref.sync import sync_to_async

from chargepoints import security
from tests.chargepoints.pki import PKI, TLSDaphneServer
from tests.conftest import DaphneServer, eventually, server_env
from tests.ocpp_client import OCPPClient

pytestmark = [
    pytest.mark.django_db(transaction=True),
    # TLS and certificate checks on the wire; the charge point rows they read are read
    # alike on both databases (and asserted on both by tests/chargepoints).
    pytest.mark.once,
]


class Certificates:
    """A root CA, an intermediate CA it signs, and the CRLs of both."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.root = PKI(directory, "TLS test root CA")
        self.intermediate = PKI(directory, "TLS test intermediate CA", issuer=self.root)
        self.server = self.root.issue("localhost", server=True)
        #: The root and the intermediate CA: a bundle with the intermediate in it.
        self.bundle = directory / "bundle.pem"
        self.bundle.write_bytes(self.root.ca_file.read_bytes() + self.intermediate.ca_file.read_bytes())
        self.revoked = self.root.issue("CP-REVOKED")
        self.revoked_below_intermediate = self.intermediate.issue("CP-REVOKED-2")
        self.crl = directory / "crl.pem"
        self.write_crl()

    def write_crl(self) -> None:
        self.crl.write_bytes(
            self.root.revocation_list([self.revoked])
            + self.intermediate.revocation_list([self.revoked_below_intermediate])
        )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("tls-pki"))


def start_tls_server(test_db_path, log_dir: Path, certificates: Certificates, **env: str) -> TLSDaphneServer:
    """Daphne on levity-tls: trusting the root CA only (not the intermediate) for client certificates."""
    overrides = {
        "LEVITY_CLIENT_CA_FILE": str(certificates.root.ca_file),
        "LEVITY_TLS_CRL": str(certificates.crl),
    }
    overrides.update(env)
    return TLSDaphneServer(
        server_env(test_db_path, **overrides),
        log_dir / "daphne-tls.log",
        certificates.server,
        overrides["LEVITY_CLIENT_CA_FILE"],
    ).start()


@pytest.fixture(scope="module")
def tls_server(django_db_setup, test_db_path, tmp_path_factory, certificates):
    server = start_tls_server(test_db_path, tmp_path_factory.mktemp("logs"), certificates)
    yield server
    server.stop()


def tls_attempt(port: int, context: ssl.SSLContext, request: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"):
    """A TLS connection that sends ``request``: (its local port, what became of it).

    The local port is bound before connecting: a server that refuses the connection may
    reset it before ``connect()`` returns.
    """
    sock = socket.socket()
    sock.settimeout(20)
    sock.bind(("127.0.0.1", 0))
    local_port = sock.getsockname()[1]
    try:
        sock.connect(("127.0.0.1", port))
        with context.wrap_socket(sock, server_hostname="localhost") as connection:
            connection.sendall(request)
            answer = connection.recv(100)
    except (ssl.SSLError, OSError) as exc:
        return local_port, f"failed: {exc}"
    finally:
        sock.close()
    return local_port, "answered" if answer else "closed"


async def attempt(server: TLSDaphneServer, context: ssl.SSLContext) -> tuple[int, str]:
    return await asyncio.to_thread(tls_attempt, server.tls_port, context)


async def profile_3(cp_id: str) -> None:
    await sync_to_async(security.set_security_profile)(cp_id, 3, create=True)


async def boots(server: TLSDaphneServer, cp_id: str, context: ssl.SSLContext) -> str:
    client = await OCPPClient.open(server.wss_url(cp_id), ssl=context, open_timeout=30)
    try:
        return (await client.boot()).status
    finally:
        await client.close()


# --- failed handshakes are logged ------------------------------------------------------------


async def test_certificate_of_another_ca_fails_the_handshake_and_is_logged(
    tls_server, certificates, tmp_path
):
    other = PKI(tmp_path, "Some other CA")
    port, outcome = await attempt(tls_server, certificates.root.client_context(other.issue("CP-1")))
    assert outcome.startswith("failed") or outcome == "closed"
    await tls_server.wait_for_log(
        f"127.0.0.1:{port}: TLS handshake failed: unable to get local issuer certificate"
    )


async def test_expired_certificate_fails_the_handshake_and_is_logged(tls_server, certificates):
    expired = certificates.root.issue("CP-EXPIRED", expired=True)
    port, outcome = await attempt(tls_server, certificates.root.client_context(expired))
    assert outcome != "answered"
    log = await tls_server.wait_for_log(f"127.0.0.1:{port}: TLS handshake failed: certificate has expired")
    assert "certificate 'CP-EXPIRED', depth 0" in log


async def test_plain_http_on_the_tls_port_is_logged(tls_server):
    def plain() -> int:
        with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=20) as sock:
            sock.sendall(b"GET /ocpp/CP-PLAIN HTTP/1.1\r\nHost: x\r\n\r\n")
            sock.recv(100)
            return sock.getsockname()[1]

    port = await asyncio.to_thread(plain)
    await tls_server.wait_for_log(f"127.0.0.1:{port}: TLS handshake failed: ")


async def test_client_that_does_not_trust_the_server_is_logged(tls_server, tmp_path):
    stranger = PKI(tmp_path, "A CA the server does not use")
    port, outcome = await attempt(tls_server, stranger.client_context())
    assert "certificate verify failed" in outcome
    await tls_server.wait_for_log(f"127.0.0.1:{port}: TLS handshake failed: ")
    assert (
        "unknown ca" in tls_server.log().split(f"127.0.0.1:{port}: TLS handshake failed: ")[1].splitlines()[0]
    )


async def test_connection_closed_before_any_tls_is_not_a_failed_handshake(tls_server, certificates, tmp_path):
    def port_check() -> int:
        with socket.create_connection(("127.0.0.1", tls_server.tls_port), timeout=20) as sock:
            return sock.getsockname()[1]

    quiet_port = await asyncio.to_thread(port_check)
    # A failing handshake after it: once that is logged, the port check would have been too.
    other = PKI(tmp_path, "Yet another CA")
    port, _ = await attempt(tls_server, certificates.root.client_context(other.issue("CP-2")))
    log = await tls_server.wait_for_log(f"127.0.0.1:{port}: TLS handshake failed")
    assert f"127.0.0.1:{quiet_port}:" not in log


async def test_failed_handshakes_count_against_the_address_throttle(
    django_db_setup, test_db_path, tmp_path, certificates, cp_id
):
    server = start_tls_server(test_db_path, tmp_path, certificates, LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS="3")
    try:
        await profile_3(cp_id)
        expired = certificates.root.client_context(certificates.root.issue(cp_id, expired=True))
        for _ in range(3):
            port, _ = await attempt(server, expired)
            await server.wait_for_log(f"127.0.0.1:{port}: TLS handshake failed: certificate has expired")
        await server.wait_for_log(
            "127.0.0.1: 3 failed handshakes within 60 s (last: TLS handshake: certificate has expired"
        )
        # Now even a valid certificate is cut off before its handshake.
        port, outcome = await attempt(
            server, certificates.root.client_context(certificates.root.issue(cp_id))
        )
        assert outcome != "answered"
        await server.wait_for_log(
            f"127.0.0.1:{port}: TLS connection refused, too many failed handshakes from its address"
        )
    finally:
        server.stop()


async def test_failed_handshakes_are_counted_in_the_metrics(
    django_db_setup, test_db_path, tmp_path, certificates
):
    from tests.plugins.conftest import plugins_env
    from tests.plugins.metrics_page import scrape

    server = start_tls_server(
        test_db_path,
        tmp_path,
        certificates,
        LEVITY_PLUGINS=plugins_env({"class": "plugins.PrometheusMetricsPlugin"}),
    )
    try:
        before = (await scrape(server.http_url + "/metrics")).get(
            "ocpp_connections_refused_total", kind="tls"
        )
        expired = certificates.root.issue("CP-EXPIRED", expired=True)
        port, _ = await attempt(server, certificates.root.client_context(expired))
        await server.wait_for_log(f"127.0.0.1:{port}: TLS handshake failed")

        async def counted():
            page = await scrape(server.http_url + "/metrics")
            assert page.get("ocpp_connections_refused_total", kind="tls") - before == 1
            return True

        await eventually(counted)
    finally:
        server.stop()


# --- intermediate CAs ----------------------------------------------------------------------------


async def test_certificate_of_an_intermediate_ca_sent_along_by_the_client_connects(
    tls_server, certificates, cp_id
):
    await profile_3(cp_id)
    issued = certificates.intermediate.issue(cp_id)  # its file: the certificate, then the intermediate's
    assert await boots(tls_server, cp_id, certificates.intermediate.client_context(issued)) == "Accepted"


async def test_certificate_of_an_intermediate_ca_nobody_sent_fails_the_handshake(
    tls_server, certificates, cp_id
):
    await profile_3(cp_id)
    issued = certificates.intermediate.issue(cp_id, send_chain=False)
    port, outcome = await attempt(tls_server, certificates.intermediate.client_context(issued))
    assert outcome != "answered"
    await tls_server.wait_for_log(
        f"127.0.0.1:{port}: TLS handshake failed: unable to get local issuer certificate"
    )


async def test_certificate_of_an_intermediate_ca_in_the_ca_bundle_connects(
    django_db_setup, test_db_path, tmp_path, certificates, cp_id
):
    server = start_tls_server(
        test_db_path, tmp_path, certificates, LEVITY_CLIENT_CA_FILE=str(certificates.bundle)
    )
    try:
        await profile_3(cp_id)
        issued = certificates.intermediate.issue(cp_id, send_chain=False)
        assert await boots(server, cp_id, certificates.intermediate.client_context(issued)) == "Accepted"
    finally:
        server.stop()


# --- revocation (LEVITY_TLS_CRL) ------------------------------------------------------------------


async def test_revoked_certificate_fails_the_handshake_and_is_logged(tls_server, certificates):
    await profile_3("CP-REVOKED")
    port, outcome = await attempt(tls_server, certificates.root.client_context(certificates.revoked))
    assert outcome != "answered"
    await tls_server.wait_for_log(f"127.0.0.1:{port}: TLS handshake failed: certificate revoked")


async def test_revoked_certificate_below_an_intermediate_ca_fails_the_handshake(tls_server, certificates):
    context = certificates.intermediate.client_context(certificates.revoked_below_intermediate)
    port, outcome = await attempt(tls_server, context)
    assert outcome != "answered"
    await tls_server.wait_for_log(f"127.0.0.1:{port}: TLS handshake failed: certificate revoked")


async def test_a_changed_crl_file_is_read_again(django_db_setup, test_db_path, tmp_path, certificates, cp_id):
    crl = tmp_path / "crl.pem"
    crl.write_bytes(certificates.crl.read_bytes())
    server = start_tls_server(test_db_path, tmp_path, certificates, LEVITY_TLS_CRL=str(crl))
    try:
        await profile_3(cp_id)
        issued = certificates.root.issue(cp_id)
        assert await boots(server, cp_id, certificates.root.client_context(issued)) == "Accepted"
        crl.write_bytes(
            certificates.root.revocation_list([certificates.revoked, issued])
            + certificates.intermediate.revocation_list()
        )

        async def refused() -> bool:
            port, outcome = await attempt(server, certificates.root.client_context(issued))
            return (
                outcome != "answered"
                and f"127.0.0.1:{port}: TLS handshake failed: certificate revoked" in (server.log())
            )

        await eventually(refused, timeout=30, interval=0.5)
        assert "reloaded" in server.log()
    finally:
        server.stop()


async def test_expired_crl_refuses_every_client_certificate(
    django_db_setup, test_db_path, tmp_path, certificates, cp_id
):
    crl = tmp_path / "expired-crl.pem"
    crl.write_bytes(
        certificates.root.revocation_list(expired=True) + certificates.intermediate.revocation_list()
    )
    server = start_tls_server(test_db_path, tmp_path, certificates, LEVITY_TLS_CRL=str(crl))
    try:
        await profile_3(cp_id)
        port, outcome = await attempt(
            server, certificates.root.client_context(certificates.root.issue(cp_id))
        )
        assert outcome != "answered"
        await server.wait_for_log(f"127.0.0.1:{port}: TLS handshake failed: CRL has expired")
    finally:
        server.stop()


# --- behind a trusted proxy ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxied_server(django_db_setup, test_db_path, tmp_path_factory, certificates):
    """A daphne behind a proxy at 127.0.0.1, with the intermediate CA in its CA file, and the CRLs."""
    server = DaphneServer(
        server_env(
            test_db_path,
            LEVITY_CLIENT_CA_FILE=str(certificates.bundle),
            LEVITY_TLS_CRL=str(certificates.crl),
            LEVITY_TRUSTED_PROXIES="127.0.0.1/32",
        ),
        tmp_path_factory.mktemp("logs") / "daphne-proxied.log",
    ).start()
    yield server
    server.stop()


def forwarded(pem: str) -> dict[str, str]:
    """What nginx forwards: $ssl_client_escaped_cert and $ssl_client_verify."""
    return {
        "X-Forwarded-Proto": "https",
        "X-SSL-Client-Cert": quote(pem, safe=""),
        "X-SSL-Client-Verify": "SUCCESS",
    }


async def test_forwarded_certificate_of_an_intermediate_ca_connects(proxied_server, certificates, cp_id):
    await profile_3(cp_id)
    issued = certificates.intermediate.issue(cp_id, send_chain=False)
    client = await OCPPClient.open(proxied_server.ws_url(cp_id), additional_headers=forwarded(issued.pem()))
    try:
        assert (await client.boot()).status == "Accepted"
    finally:
        await client.close()


async def test_forwarded_revoked_certificate_is_refused_with_401(proxied_server, certificates):
    await profile_3("CP-REVOKED")
    with pytest.raises(websockets.InvalidStatus) as refusal:
        await OCPPClient.open(
            proxied_server.ws_url("CP-REVOKED"), additional_headers=forwarded(certificates.revoked.pem())
        )
    assert refusal.value.response.status_code == 401
    await proxied_server.wait_for_log("CP-REVOKED: refused from")
    assert "the client certificate is revoked (LEVITY_TLS_CRL" in proxied_server.log()


async def test_behind_a_proxy_a_changed_crl_file_is_read_again(
    django_db_setup, test_db_path, tmp_path, certificates, cp_id
):
    crl = tmp_path / "crl.pem"
    crl.write_bytes(certificates.crl.read_bytes())
    server = DaphneServer(
        server_env(
            test_db_path,
            LEVITY_CLIENT_CA_FILE=str(certificates.bundle),
            LEVITY_TLS_CRL=str(crl),
            LEVITY_TRUSTED_PROXIES="127.0.0.1/32",
        ),
        tmp_path / "daphne-proxied.log",
    ).start()
    try:
        await profile_3(cp_id)
        issued = certificates.root.issue(cp_id)
        client = await OCPPClient.open(server.ws_url(cp_id), additional_headers=forwarded(issued.pem()))
        await client.close()
        crl.write_bytes(b"garbage")  # a replacement that does not load: the previous CRLs stay
        client = await OCPPClient.open(server.ws_url(cp_id), additional_headers=forwarded(issued.pem()))
        await client.close()
        await server.wait_for_log("could not be reloaded, the previous CRLs stay")
        crl.write_bytes(
            certificates.root.revocation_list([certificates.revoked, issued])
            + certificates.intermediate.revocation_list()
        )
        with pytest.raises(websockets.InvalidStatus) as refusal:
            await OCPPClient.open(server.ws_url(cp_id), additional_headers=forwarded(issued.pem()))
        assert refusal.value.response.status_code == 401
        await server.wait_for_log("the client certificate is revoked (LEVITY_TLS_CRL")
    finally:
        server.stop()
