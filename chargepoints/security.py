"""Charge point credentials and onboarding, in the data layer.

A charge point's HTTP Basic password (security profiles 1 and 2) is generated
here, shown once to whoever asked for it, and stored only as a salted hash made by
Django's password hashers. A rotated password (ChangeConfiguration
AuthorizationKey) is kept beside the old one until the charge point connects with
it; each step of a rotation is recorded on its command (``password_rotation``).
Nothing here knows sockets: the session layer asks and decides.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone

from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher, check_password, make_password
from django.db import transaction

from .models import ChargePoint, ChargePointCommand, PasswordRotation, RegistrationStatus, SecurityProfile

#: Length of a generated password: 40 hexadecimal characters (160 bits), within the
#: 16-40 characters OCPP 1.6's AuthorizationKey allows, and free of characters that
#: charge point firmware might mangle.
PASSWORD_BYTES = 20


class ChargePointPasswordHasher(PBKDF2PasswordHasher):
    """Django's PBKDF2-SHA256, with 10,000 iterations instead of a million.

    A work factor protects passwords people choose, which can be guessed; these
    are 160 random bits, which cannot, so the factor buys nothing but cost. And
    the cost is paid on the WebSocket upgrade: a reconnect storm after a restart
    checks every charge point's password at once (before the verified-password
    cache has anything), and an upgrade that takes longer than daphne's handshake
    timeout is dropped. Django's check_password reads the iteration count from the
    stored hash, so it verifies these as it verifies its own.
    """

    iterations = 10_000


HASHER = ChargePointPasswordHasher()


class UnknownChargePoint(Exception):
    def __init__(self, charge_point_id: str):
        super().__init__(f"No charge point with id {charge_point_id!r}")
        self.charge_point_id = charge_point_id


@dataclass(frozen=True)
class Credentials:
    """What authenticating a charge point needs to know about it."""

    pk: int
    charge_point_id: str
    registration_status: str
    security_profile: int | None
    password_hash: str
    new_password_hash: str

    @property
    def effective_profile(self) -> int:
        return effective_profile(self.security_profile)


def effective_profile(security_profile: int | None) -> int:
    """A charge point's own profile, or the default one when it has none."""
    if security_profile is None:
        return settings.LEVITY_DEFAULT_SECURITY_PROFILE
    return security_profile


CREDENTIAL_FIELDS = (
    "pk",
    "charge_point_id",
    "registration_status",
    "security_profile",
    "password_hash",
    "new_password_hash",
)


def credentials_of(charge_point_ids: Iterable[str]) -> dict[str, Credentials]:
    """The credentials of each known id among ``charge_point_ids``, in one query (a reconnect storm)."""
    return {
        row[1]: Credentials(*row)
        for row in ChargePoint.objects.filter(charge_point_id__in=set(charge_point_ids)).values_list(
            *CREDENTIAL_FIELDS
        )
    }


def generate_password() -> str:
    return secrets.token_hex(PASSWORD_BYTES)


def password_matches(password: str, encoded: str) -> bool:
    """Django's check_password: the hasher's constant-time comparison; False for no hash."""
    return bool(encoded) and check_password(password, encoded)


def _charge_point(charge_point_id: str) -> ChargePoint:
    try:
        return ChargePoint.objects.select_for_update().get(charge_point_id=charge_point_id)
    except ChargePoint.DoesNotExist:
        raise UnknownChargePoint(charge_point_id) from None


def set_password(charge_point_id: str) -> str:
    """Give the charge point a new password (any pending rotation is dropped); return it.

    The plaintext is returned once and kept nowhere.
    """
    password = generate_password()
    with transaction.atomic():
        charge_point = _charge_point(charge_point_id)
        charge_point.password_hash = make_password(password, hasher=HASHER)
        charge_point.new_password_hash = ""
        charge_point.password_changed_at = datetime.now(timezone.utc)
        charge_point.save(update_fields=["password_hash", "new_password_hash", "password_changed_at"])
        _end_rotations(charge_point.pk, PasswordRotation.SUPERSEDED)
    return password


def _end_rotations(charge_point_pk: int, state: str, command_pk: int | None = None) -> int:
    """Record that the charge point's pending rotation(s) (or only ``command_pk``) ended so."""
    pending = ChargePointCommand.objects.filter(
        charge_point_id=charge_point_pk, password_rotation=PasswordRotation.PENDING
    )
    if command_pk is not None:
        pending = pending.filter(pk=command_pk)
    return pending.update(password_rotation=state, password_rotation_at=datetime.now(timezone.utc))


def set_security_profile(charge_point_id: str, profile: int, *, create: bool = False) -> str | None:
    """Set the charge point's security profile; for 1 and 2, a new password, returned once.

    With ``create``, an unknown id is registered (Accepted: a provisioning script
    naming a charge point is the operator's decision).
    """
    if profile not in SecurityProfile.values:
        raise ValueError(f"Security profile {profile!r}: use 0, 1, 2 or 3.")
    with transaction.atomic():
        if create:
            ChargePoint.objects.get_or_create(
                charge_point_id=charge_point_id,
                defaults={"registration_status": RegistrationStatus.ACCEPTED},
            )
        charge_point = _charge_point(charge_point_id)
        charge_point.security_profile = profile
        charge_point.save(update_fields=["security_profile"])
        if profile in (SecurityProfile.BASIC, SecurityProfile.TLS_BASIC):
            return set_password(charge_point_id)
    return None


def begin_password_rotation(charge_point_id: str) -> str:
    """A new password for ChangeConfiguration AuthorizationKey, valid beside the old one.

    An earlier rotation still pending is superseded: its password is no longer valid.
    The caller sends the password in a command marked ``password_rotation`` pending.
    """
    password = generate_password()
    with transaction.atomic():
        charge_point = _charge_point(charge_point_id)
        charge_point.new_password_hash = make_password(password, hasher=HASHER)
        charge_point.save(update_fields=["new_password_hash"])
        _end_rotations(charge_point.pk, PasswordRotation.SUPERSEDED)
    return password


def abandon_password_rotation(charge_point_id: str, password: str, command_pk: int) -> None:
    """The charge point did not take the new password: only the old one stays valid."""
    with transaction.atomic():
        charge_point = _charge_point(charge_point_id)
        if password_matches(password, charge_point.new_password_hash):
            charge_point.new_password_hash = ""
            charge_point.save(update_fields=["new_password_hash"])
        _end_rotations(charge_point.pk, PasswordRotation.ABANDONED, command_pk)


def complete_password_rotation(charge_point_pk: int, new_password_hash: str) -> bool:
    """The charge point connected with its new password: the old one stops being valid.

    Its rotation's command is marked completed. False when the rotation changed
    meanwhile (another rotation, or a new password set).
    """
    with transaction.atomic():
        completed = ChargePoint.objects.filter(
            pk=charge_point_pk, new_password_hash=new_password_hash
        ).update(
            password_hash=new_password_hash,
            new_password_hash="",
            password_changed_at=datetime.now(timezone.utc),
        )
        if completed:
            _end_rotations(charge_point_pk, PasswordRotation.COMPLETED)
    return bool(completed)


def accept_charge_points(charge_point_ids: list[str]) -> list[str]:
    """Mark charge points Accepted; return the ids that were not Accepted before."""
    with transaction.atomic():
        changed = list(
            ChargePoint.objects.filter(charge_point_id__in=charge_point_ids)
            .exclude(registration_status=RegistrationStatus.ACCEPTED)
            .values_list("charge_point_id", flat=True)
        )
        ChargePoint.objects.filter(charge_point_id__in=changed).update(
            registration_status=RegistrationStatus.ACCEPTED
        )
    return changed
