"""Security profile 3 behind deploy/nginx/levity.conf: a client certificate of an
intermediate CA, and a revoked one (nginx's ssl_crl, as docs/security.md says to set
it, with the file of LEVITY_TLS_CRL), through Debian's nginx to one Levity process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import websockets
from asgiref.sync import sync_to_async

from chargepoints import security
from chargepoints.models import ChargePoint
from tests.chargepoints.pki import PKI
from tests.conftest import DaphneServer, server_env
from tests.deploy.topology import (
    Certificates,
    NginxServer,
    free_port,
    proxied_daphne,
    render_levity_conf,
    require_program,
)
from tests.ocpp_client import OCPPClient

pytestmark = pytest.mark.django_db(transaction=True)

#: The line of deploy/nginx/levity.conf that the operator uncomments for revocation.
SSL_CRL_LINE = "# ssl_crl /etc/ssl/levity/charge-point-ca.crl;"


@dataclass
class ClientCertificates:
    root: PKI
    intermediate: PKI
    revoked: object


@dataclass
class ProxiedLevity:
    nginx: NginxServer
    levity: DaphneServer
    pki: ClientCertificates


@pytest.fixture(scope="module")
def proxied(django_db_setup, test_db_path, tmp_path_factory) -> Iterator[ProxiedLevity]:
    require_program("nginx", "nginx")
    work = tmp_path_factory.mktemp("nginx-client-certificates")
    root = PKI(work, "nginx test root CA")
    intermediate = PKI(work, "nginx test intermediate CA", issuer=root)
    revoked = intermediate.issue("CP-NGINX-REVOKED", send_chain=False)
    bundle = work / "charge-point-ca.pem"
    bundle.write_bytes(root.ca_file.read_bytes() + intermediate.ca_file.read_bytes())
    crl = work / "charge-point-ca.crl"
    crl.write_bytes(root.revocation_list() + intermediate.revocation_list([revoked]))
    levity = proxied_daphne(
        server_env(
            test_db_path,
            LEVITY_CLIENT_CA_FILE=str(bundle),
            LEVITY_TLS_CRL=str(crl),
            LEVITY_TRUSTED_PROXIES="127.0.0.1/32",
        ),
        work / "levity.log",
    ).start()
    server = root.issue("localhost", server=True)
    static_root = work / "static"
    static_root.mkdir()
    tls_port, http_port = free_port(), free_port()
    conf = render_levity_conf(
        upstreams=[levity.port],
        tls_port=tls_port,
        http_port=http_port,
        certificates=Certificates(bundle, server.certificate, server.key),
        static_root=static_root,
    )
    assert SSL_CRL_LINE in conf, "deploy/nginx/levity.conf no longer has the ssl_crl line: update the test"
    conf = conf.replace(SSL_CRL_LINE, f"ssl_crl {crl};")
    nginx = NginxServer(work / "nginx", conf, tls_port, http_port)
    nginx.check()
    nginx.start()
    yield ProxiedLevity(nginx, levity, ClientCertificates(root, intermediate, revoked))
    nginx.stop()
    levity.stop()


async def test_certificate_of_an_intermediate_ca_connects_through_nginx(proxied, cp_id):
    await sync_to_async(security.set_security_profile)(cp_id, 3, create=True)
    issued = proxied.pki.intermediate.issue(cp_id, send_chain=False)
    client = await OCPPClient.open(
        proxied.nginx.wss_url(cp_id), ssl=proxied.pki.intermediate.client_context(issued), open_timeout=30
    )
    try:
        assert (await client.boot()).status == "Accepted"
    finally:
        await client.close()


async def test_revoked_certificate_is_refused_by_nginx_and_never_reaches_a_session(proxied):
    cp_id = "CP-NGINX-REVOKED"
    await sync_to_async(security.set_security_profile)(cp_id, 3, create=True)
    with pytest.raises(websockets.InvalidStatus) as refusal:
        await OCPPClient.open(
            proxied.nginx.wss_url(cp_id),
            ssl=proxied.pki.intermediate.client_context(proxied.pki.revoked),
            open_timeout=30,
        )
    assert refusal.value.response.status_code == 400  # nginx: "The SSL certificate error"
    assert "certificate revoked" in proxied.nginx.error_log()
    row = await ChargePoint.objects.aget(charge_point_id=cp_id)
    assert (row.is_connected, row.connected_at) == (False, None)
