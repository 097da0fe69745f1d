"""Who may open an OCPP session: security profiles 0-3 and the onboarding policy.

``admit()`` decides on a WebSocket upgrade, before any session exists or the
connect is written, from the ASGI scope and the charge point's credentials:

- **how the connection is secured**: the ASGI ``tls`` scope extension (daphne's
  TLS endpoint, as levity_site.server fills it in), or -- only from an address in
  LEVITY_TRUSTED_PROXIES -- ``X-Forwarded-Proto: https`` and the client
  certificate in ``X-SSL-Client-Cert`` with ``X-SSL-Client-Verify: SUCCESS``
  (nginx's ``$ssl_client_escaped_cert`` and ``$ssl_client_verify``);
- **the charge point's credentials** (chargepoints.security): profile 1 and 2 an
  HTTP Basic password, checked by Django's password hashers; profile 3 a client
  certificate from LEVITY_CLIENT_CA_FILE whose subject names the charge point;
- **the onboarding policy** for ids Levity does not know.

A verified password is remembered for LEVITY_PASSWORD_CACHE_SECONDS under a keyed
hash (HMAC with SECRET_KEY) of the id, the password and the stored hash, so a
reconnect storm runs the deliberately slow hasher once per charge point, not once
per connect; a new password or a rotation changes the stored hash and so the key.

A charge point under profile 0 needs no proof: the connect's own write admits it
(chargepoints.services.register_connections), in the same batch as the other
connects of a storm, and ``admit()`` is not asked. For the other profiles that
write writes nothing and brings back the credentials (None for an unknown id that
it did not register), ``admit()`` decides, and an admitted connect is written as
``proven``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from urllib.parse import unquote

from cryptography import x509
from cryptography.x509.oid import NameOID
from OpenSSL import crypto

from levity_site import tls
from levity_site.conf import settings

from .. import security
from ..models import RegistrationStatus, SecurityProfile
from . import writer

logger = logging.getLogger(__name__)

#: The subject fields LEVITY_CLIENT_CERT_ID_FIELD may name.
ID_FIELDS = {"CN": NameOID.COMMON_NAME, "serialNumber": NameOID.SERIAL_NUMBER, "UID": NameOID.USER_ID}
#: The realm in the WWW-Authenticate header of a 401.
REALM = "OCPP"


@dataclass(frozen=True)
class Refusal:
    """The upgrade is answered with this HTTP status; ``reason`` goes to the log only."""

    status: int
    reason: str


@dataclass(frozen=True)
class Admission:
    """The connection may open a session."""

    #: The registration status the session starts with (Accepted, Pending, Rejected).
    registration_status: str
    #: Register the id (it is not known yet).
    register: bool = False
    #: The charge point proved the rotated password: make it the only valid one.
    completes_rotation: str = ""


@dataclass(frozen=True)
class ConnectionSecurity:
    """What the scope tells about how the charge point reached Levity."""

    tls: bool
    client_certificate: x509.Certificate | None
    #: Where the certificate came from: "tls" (daphne's endpoint) or "proxy".
    certificate_source: str = ""
    #: Why a certificate that was offered is not usable.
    certificate_problem: str = ""
    #: The certificates the client sent along with its own (intermediate CAs).
    intermediates: tuple[x509.Certificate, ...] = ()


# --- the decision ---------------------------------------------------------------------


async def admit(
    scope: dict, charge_point_id: str, credentials: security.Credentials | None
) -> Admission | Refusal:
    """Admit the connection of the charge point with ``credentials`` (None: an
    unknown id) or say why not (see the module's docstring)."""
    profile = (
        credentials.effective_profile if credentials is not None else settings.LEVITY_DEFAULT_SECURITY_PROFILE
    )
    if credentials is None and settings.LEVITY_UNKNOWN_CHARGE_POINTS == "refuse":
        return Refusal(403, "unknown charge point (LEVITY_UNKNOWN_CHARGE_POINTS=refuse)")
    # Profiles 0 and 1 do not ask how the connection is secured.
    connection = connection_security(scope) if profile >= SecurityProfile.TLS_BASIC else None
    if connection is not None and not connection.tls:
        return Refusal(403, f"security profile {profile} needs TLS (wss), it came over plain ws")
    completes_rotation = ""
    if profile in (SecurityProfile.BASIC, SecurityProfile.TLS_BASIC):
        if credentials is None:
            # No password can be right for an id nobody has registered (docs/security.md).
            return Refusal(401, f"unknown charge point under security profile {profile}")
        outcome = await check_basic(scope, credentials)
        if isinstance(outcome, Refusal):
            return outcome
        completes_rotation = outcome
    elif profile == SecurityProfile.MUTUAL_TLS and connection is not None:
        problem = certificate_problem(connection, charge_point_id)
        if problem:
            return Refusal(401, problem)
    if credentials is None:
        return Admission(registers_unknown_as(), register=True)
    return Admission(credentials.registration_status, completes_rotation=completes_rotation)


def registers_unknown_as(policy: str | None = None) -> str:
    """The registration status the onboarding policy (LEVITY_UNKNOWN_CHARGE_POINTS, or
    ``policy``) registers an unknown id with: Accepted, Pending, or "" to refuse it."""
    policy = policy or settings.LEVITY_UNKNOWN_CHARGE_POINTS
    if policy == "refuse":
        return ""
    return RegistrationStatus.ACCEPTED if policy == "accept" else RegistrationStatus.PENDING


# --- profile 1 and 2: HTTP Basic ------------------------------------------------------------


def basic_credentials(scope: dict) -> str | None:
    """The decoded ``username:password`` of the request's ``Authorization: Basic`` header.

    Not split here: a charge point id may itself contain ":", which RFC 7617 does not
    foresee; the caller knows the id, and so where the password begins.
    """
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, encoded = value.partition(b" ")
            if scheme.lower() != b"basic":
                return None
            try:
                return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
    return None


_verified: dict[bytes, float] = {}


def _cache_key(charge_point_id: str, password: str, encoded: str) -> bytes:
    message = "\0".join((charge_point_id, password, encoded)).encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).digest()


async def _password_matches(charge_point_id: str, password: str, encoded: str) -> bool:
    if not encoded:
        return False
    key = _cache_key(charge_point_id, password, encoded)
    now = time.monotonic()
    expires = _verified.get(key)
    if expires is not None and expires > now:
        return True
    # The hasher is slow by design: off the event loop.
    if not await asyncio.to_thread(security.password_matches, password, encoded):
        return False
    if settings.LEVITY_PASSWORD_CACHE_SECONDS > 0:
        if len(_verified) > 100_000:
            _forget_expired(now)
        _verified[key] = now + settings.LEVITY_PASSWORD_CACHE_SECONDS
    return True


def _forget_expired(now: float) -> None:
    for key in [key for key, expires in _verified.items() if expires <= now]:
        del _verified[key]


def forget_verified_passwords() -> None:
    """Empty the cache of verified passwords (tests, or after a credential leak)."""
    _verified.clear()


async def check_basic(scope: dict, credentials: security.Credentials) -> str | Refusal:
    """ "" if the old password is right, the new hash if the rotated one is, else a Refusal."""
    basic = basic_credentials(scope)
    if basic is None:
        return Refusal(401, "no HTTP Basic credentials")
    prefix = credentials.charge_point_id + ":"
    if not basic.startswith(prefix):
        username = basic.partition(":")[0]
        return Refusal(401, f"HTTP Basic username {username[:60]!r} is not the charge point id")
    password = basic[len(prefix) :]
    if not credentials.password_hash and not credentials.new_password_hash:
        return Refusal(401, "the charge point has no password yet (generate one in the admin)")
    cp_id = credentials.charge_point_id
    if await _password_matches(cp_id, password, credentials.password_hash):
        return ""
    if await _password_matches(cp_id, password, credentials.new_password_hash):
        return credentials.new_password_hash
    return Refusal(401, "wrong password")


# --- how the connection is secured; profile 3 -----------------------------------------------------


def _header(scope: dict, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return value.decode("latin-1")
    return None


def peer_address(scope: dict) -> str:
    """The address of the TCP peer (the proxy, if there is one), not a forwarded one.

    Only levity_site.server tells it. Under another server, ``client`` may come from
    a header anyone can send (daphne's --proxy-headers): then no address is trusted.
    """
    connection = scope.get("extensions", {}).get("levity.connection")
    if connection and connection.get("peer"):
        return connection["peer"][0]
    return ""


def from_trusted_proxy(scope: dict) -> bool:
    if not settings.LEVITY_TRUSTED_PROXIES:  # no address to parse
        return False
    try:
        address = ipaddress.ip_address(peer_address(scope))
    except ValueError:
        return False
    return any(address in network for network in settings.LEVITY_TRUSTED_PROXIES)


def connection_security(scope: dict) -> ConnectionSecurity:
    tls = scope.get("extensions", {}).get("tls")
    if tls is not None:
        chain = tls.get("client_cert_chain") or ()
        if not chain:
            return ConnectionSecurity(True, None)
        return _with_certificate(True, "".join(chain).encode(), "tls")
    if not from_trusted_proxy(scope):
        return ConnectionSecurity(False, None)
    secure = (_header(scope, b"x-forwarded-proto") or "").lower() in ("https", "wss")
    escaped = _header(scope, b"x-ssl-client-cert")
    if not escaped:
        return ConnectionSecurity(secure, None)
    verify = _header(scope, b"x-ssl-client-verify") or ""
    if verify != "SUCCESS":
        return ConnectionSecurity(
            secure, None, "proxy", f"the proxy did not verify the client certificate ({verify[:80]})"
        )
    return _with_certificate(secure, unquote(escaped).encode(), "proxy")


def _with_certificate(tls: bool, pem: bytes, source: str) -> ConnectionSecurity:
    """The client certificate of ``pem``, and the intermediate CA certificates after it."""
    try:
        certificate, *intermediates = x509.load_pem_x509_certificates(pem)
    except ValueError:
        return ConnectionSecurity(tls, None, source, "the client certificate is not valid PEM")
    return ConnectionSecurity(tls, certificate, source, intermediates=tuple(intermediates))


@cache
def _load_authorities(path: str) -> tuple[x509.Certificate, ...]:
    return tuple(x509.load_pem_x509_certificates(Path(path).read_bytes()))


def certificate_authorities() -> tuple[x509.Certificate, ...]:
    """The CA certificates of LEVITY_CLIENT_CA_FILE (read once)."""
    if not settings.LEVITY_CLIENT_CA_FILE:
        return ()
    return _load_authorities(settings.LEVITY_CLIENT_CA_FILE)


def certificate_identity(certificate: x509.Certificate) -> str | None:
    """The subject field (LEVITY_CLIENT_CERT_ID_FIELD) that names the charge point."""
    values = certificate.subject.get_attributes_for_oid(ID_FIELDS[settings.LEVITY_CLIENT_CERT_ID_FIELD])
    return str(values[0].value) if values else None


def certificate_problem(connection: ConnectionSecurity, charge_point_id: str) -> str:
    """Why the connection's client certificate does not prove ``charge_point_id`` ("" if it does).

    Verified by the TLS endpoint or the trusted proxy, and again here against
    LEVITY_CLIENT_CA_FILE (and LEVITY_TLS_CRL): within its validity, and a path
    from it to one of the file's CAs that OpenSSL verifies.
    """
    if connection.certificate_problem:
        return connection.certificate_problem
    certificate = connection.client_certificate
    if certificate is None:
        return "security profile 3 needs a client certificate; none was presented"
    authorities = certificate_authorities()
    if not authorities:
        return "security profile 3 needs LEVITY_CLIENT_CA_FILE; it is not set"
    now = datetime.now(timezone.utc)
    if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
        return f"the client certificate is not valid now (valid until {certificate.not_valid_after_utc:%Y-%m-%d %H:%M}Z)"
    problem = verification_problem(certificate, connection.intermediates)
    if problem:
        return problem
    identity = certificate_identity(certificate)
    if identity != charge_point_id:
        field = settings.LEVITY_CLIENT_CERT_ID_FIELD
        return f"the client certificate's {field} {identity!r} is not the charge point id"
    return ""


#: OpenSSL's X509_V_ERR_* codes that mean "no path to a CA of the file".
UNKNOWN_ISSUER_ERRORS = {2, 18, 19, 20, 21}
#: X509_V_ERR_CERT_REVOKED.
REVOKED = 23


def verification_problem(certificate: x509.Certificate, intermediates: tuple[x509.Certificate, ...]) -> str:
    """Why OpenSSL does not verify ``certificate`` ("" if it does).

    The path may go through intermediate CAs in LEVITY_CLIENT_CA_FILE or sent by the
    client; with LEVITY_TLS_CRL, no certificate on it may be revoked. OpenSSL's own
    verification (pyOpenSSL's X509StoreContext), as in the TLS handshake.
    """
    context = crypto.X509StoreContext(
        verification_store(),
        crypto.X509.from_cryptography(certificate),
        [crypto.X509.from_cryptography(c) for c in intermediates],
    )
    try:
        context.verify_certificate()
    except crypto.X509StoreContextError as exc:
        # pyOpenSSL's errors: [X509_V_ERR code, depth in the chain, OpenSSL's message].
        errors: list = [*exc.errors, None, None, str(exc)] if exc.errors else [None, None, str(exc)]
        code, depth, message = errors[0], errors[1], errors[2]
        if code in UNKNOWN_ISSUER_ERRORS:
            return "the client certificate is not issued by a CA of LEVITY_CLIENT_CA_FILE"
        if code == REVOKED:
            return f"the client certificate is revoked (LEVITY_TLS_CRL; certificate at depth {depth})"
        return f"the client certificate does not verify: {message} (certificate at depth {depth})"
    return ""


def _crl_stamp() -> tuple[int, int] | None:
    """The CRL file's modification time and size: a changed file is read again."""
    if not settings.LEVITY_TLS_CRL:
        return None
    try:
        status = os.stat(settings.LEVITY_TLS_CRL)
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size)


#: The store of the last verification, with the files (and the CRL file's stamp) it was made from.
_store: tuple[tuple, crypto.X509Store] | None = None


def verification_store() -> crypto.X509Store:
    """LEVITY_CLIENT_CA_FILE's CAs and LEVITY_TLS_CRL's CRLs, read again when the CRL file
    changes; a CRL file that no longer loads keeps the previous CRLs (as the TLS endpoint)."""
    global _store
    files = (settings.LEVITY_CLIENT_CA_FILE, settings.LEVITY_TLS_CRL)
    key = (*files, _crl_stamp())
    if _store is not None and _store[0] == key:
        return _store[1]
    store = crypto.X509Store()
    for authority in _load_authorities(files[0]):
        store.add_cert(crypto.X509.from_cryptography(authority))
    if files[1]:
        try:
            revocation_lists = tls.load_crls(files[1])
        except (OSError, ValueError) as exc:
            if _store is not None and _store[0][:2] == files:
                logger.error(
                    "LEVITY_TLS_CRL %s could not be reloaded, the previous CRLs stay: %s", files[1], exc
                )
                _store = (key, _store[1])
                return _store[1]
            # No CRLs at all: with the CRL check on, nothing verifies (fail closed).
            logger.error("LEVITY_TLS_CRL %s cannot be read: %s", files[1], exc)
            revocation_lists = []
        for revocation_list in revocation_lists:
            store.add_crl(revocation_list)
        store.set_flags(crypto.X509StoreFlags.CRL_CHECK | crypto.X509StoreFlags.CRL_CHECK_ALL)
    _store = (key, store)
    return store


async def complete_password_rotation(
    charge_point_id: str, charge_point_pk: int, admission: Admission
) -> None:
    """The charge point connected with its rotated password: from now on only that one is valid."""
    if await writer.run(security.complete_password_rotation, charge_point_pk, admission.completes_rotation):
        logger.info("%s: connected with its new password; the old one is no longer valid", charge_point_id)
