"""chargepoints.services.register_connections: who is admitted by the connect's own write."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chargepoints import security, services
from chargepoints.models import ChargePoint

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=timezone.utc)


def connect(charge_point_id: str, **fields) -> services.Connected | security.Credentials | None:
    return services.register_connections(
        [services.Connection(charge_point_id, "10.0.0.1:5000", NOW, **fields)]
    )[0]


def test_a_charge_point_under_profile_0_is_marked_online_by_its_connect():
    row = ChargePoint.objects.create(charge_point_id="CP-0", registration_status="Pending")
    assert connect("CP-0") == services.Connected(row.pk, "Pending")
    row.refresh_from_db()
    assert (row.is_connected, row.connected_at, row.remote_address) == (True, NOW, "10.0.0.1:5000")


@pytest.mark.parametrize("profile", [1, 2, 3])
def test_a_charge_point_that_must_prove_itself_gets_its_credentials_back_and_stays_offline(profile):
    row = ChargePoint.objects.create(charge_point_id="CP-P", security_profile=profile, password_hash="h")
    credentials = connect("CP-P")
    assert isinstance(credentials, security.Credentials)
    assert (credentials.pk, credentials.effective_profile, credentials.password_hash) == (
        row.pk,
        profile,
        "h",
    )
    row.refresh_from_db()
    assert not row.is_connected and row.connected_at is None


def test_a_proven_connect_is_written_whatever_the_profile():
    row = ChargePoint.objects.create(charge_point_id="CP-P", security_profile=2)
    assert connect("CP-P", proven=True) == services.Connected(row.pk, "Accepted")
    row.refresh_from_db()
    assert row.is_connected


def test_an_unknown_id_is_registered_as_the_onboarding_policy_says():
    connected = connect("CP-NEW", registers_unknown_as="Pending")
    assert isinstance(connected, services.Connected) and connected.registered
    row = ChargePoint.objects.get(charge_point_id="CP-NEW")
    assert (row.pk, row.registration_status, row.is_connected) == (connected.pk, "Pending", True)


def test_an_unknown_id_the_policy_refuses_is_not_registered():
    assert connect("CP-NEW", registers_unknown_as="") is None
    assert not ChargePoint.objects.filter(charge_point_id="CP-NEW").exists()


def test_an_unknown_id_under_a_default_profile_with_proof_is_registered_only_once_proven(settings):
    settings.LEVITY_DEFAULT_SECURITY_PROFILE = 3
    assert connect("CP-NEW", registers_unknown_as="Accepted") is None
    assert not ChargePoint.objects.filter(charge_point_id="CP-NEW").exists()
    connected = connect("CP-NEW", registers_unknown_as="Accepted", proven=True)
    assert isinstance(connected, services.Connected) and connected.registered
    assert ChargePoint.objects.get(charge_point_id="CP-NEW").is_connected
