"""Connects, disconnects, BootNotifications and StatusNotifications of many charge points, in bulk.

Over a real daphne server, charge points that send at once (as after a restart)
each get their own answer and their own rows; and in the database layer, one
request that the database refuses never costs the others of its batch their rows.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.utils.functional import lazystr

from chargepoints import services
from chargepoints.db import insert_rows, value_preparer
from chargepoints.models import ChargePoint, Connector, RegistrationStatus, StatusNotification
from chargepoints.session import writer
from tests.conftest import eventually

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)


@contextlib.asynccontextmanager
async def sessions_of(raw_ws, charge_point_ids: list[str]):
    async with contextlib.AsyncExitStack() as stack:
        yield await asyncio.gather(*(stack.enter_async_context(raw_ws(cp)) for cp in charge_point_ids))


def status_frame(unique_id: str, connector_id: int, status: str, timestamp: str) -> list:
    return [
        2,
        unique_id,
        "StatusNotification",
        {"connectorId": connector_id, "errorCode": "NoError", "status": status, "timestamp": timestamp},
    ]


def report(charge_point_pk: int, status: str, at: datetime, connector_id: int = 1) -> services.StatusReport:
    return services.StatusReport(
        charge_point_pk,
        connector_id=connector_id,
        status=status,
        error_code="NoError",
        info="",
        vendor_id="",
        vendor_error_code="",
        timestamp=at,
        received_at=at,
    )


# --- over the wire ------------------------------------------------------------------------


async def test_charge_points_connecting_at_once_are_all_registered_online(raw_ws, cp_id):
    ids = [f"{cp_id}-{i}" for i in range(20)]
    async with sessions_of(raw_ws, ids) as sessions:
        answers = await asyncio.gather(*(s.exchange([2, "hb", "Heartbeat", {}]) for s in sessions))
        online = {cp.charge_point_id async for cp in ChargePoint.objects.filter(is_connected=True)}
    assert all(a[:2] == [3, "hb"] for a in answers)
    assert online >= set(ids)
    assert await ChargePoint.objects.filter(charge_point_id__in=ids).acount() == len(ids)


async def test_boot_notifications_sent_at_once_each_store_their_identity_and_get_their_own_status(
    raw_ws, cp_id
):
    ids = [f"{cp_id}-{i}" for i in range(12)]
    await ChargePoint.objects.abulk_create(
        [
            ChargePoint(charge_point_id=ids[0], registration_status=RegistrationStatus.REJECTED),
            ChargePoint(charge_point_id=ids[1], registration_status=RegistrationStatus.PENDING),
        ]
    )
    async with sessions_of(raw_ws, ids) as sessions:
        answers = await asyncio.gather(
            *(
                s.exchange(
                    [
                        2,
                        "boot",
                        "BootNotification",
                        {
                            "chargePointVendor": "V",
                            "chargePointModel": f"M{i}",
                            "chargePointSerialNumber": f"S{i}",
                        },
                    ]
                )
                for i, s in enumerate(sessions)
            )
        )
    assert [a[2]["status"] for a in answers] == ["Rejected", "Pending"] + ["Accepted"] * 10
    rows = {
        cp.charge_point_id: (
            cp.charge_point_model,
            cp.charge_point_serial_number,
            cp.last_boot_at is not None,
        )
        async for cp in ChargePoint.objects.filter(charge_point_id__in=ids)
    }
    assert rows == {cp: (f"M{i}", f"S{i}", True) for i, cp in enumerate(ids)}


async def test_status_notifications_sent_at_once_are_all_in_history_and_connector_state(raw_ws, cp_id):
    ids = [f"{cp_id}-{i}" for i in range(15)]
    async with sessions_of(raw_ws, ids) as sessions:
        first = await asyncio.gather(
            *(s.exchange(status_frame("s1", 1, "Preparing", "2026-01-01T10:00:00Z")) for s in sessions)
        )
        second = await asyncio.gather(
            *(s.exchange(status_frame("s2", 1, "Charging", "2026-01-01T10:01:00Z")) for s in sessions)
        )
    assert first == [[3, "s1", {}]] * len(ids)
    assert second == [[3, "s2", {}]] * len(ids)
    states = {
        c.charge_point.charge_point_id: c.status
        async for c in Connector.objects.filter(charge_point__charge_point_id__in=ids).select_related(
            "charge_point"
        )
    }
    assert states == dict.fromkeys(ids, "Charging")
    assert await StatusNotification.objects.filter(charge_point__charge_point_id__in=ids).acount() == 2 * len(
        ids
    )


async def test_charge_points_disconnecting_at_once_are_all_recorded_offline(raw_ws, cp_id):
    ids = [f"{cp_id}-{i}" for i in range(20)]
    async with sessions_of(raw_ws, ids) as sessions:
        await asyncio.gather(*(s.exchange([2, "hb", "Heartbeat", {}]) for s in sessions[::2]))

    async def all_offline() -> list[ChargePoint]:
        rows = [cp async for cp in ChargePoint.objects.filter(charge_point_id__in=ids, is_connected=False)]
        return rows if len(rows) == len(ids) else []

    rows = await eventually(all_offline)
    assert sorted(cp.charge_point_id for cp in rows) == sorted(ids)
    assert all(cp.disconnected_at is not None and cp.last_seen_at is not None for cp in rows)
    assert {cp.charge_point_id for cp in rows if cp.last_heartbeat_at is not None} == set(ids[::2])


# --- in the database layer -------------------------------------------------------------------


def kept_and_deleted(prefix: str) -> tuple[ChargePoint, int]:
    """A charge point, and the primary key of one deleted meanwhile (as by an operator)."""
    kept = ChargePoint.objects.create(charge_point_id=f"{prefix}-kept")
    gone = ChargePoint.objects.create(charge_point_id=f"{prefix}-gone")
    gone_pk = gone.pk
    gone.delete()
    return kept, gone_pk


def test_an_older_status_notification_in_the_same_batch_goes_to_history_only():
    cp = ChargePoint.objects.create(charge_point_id="bulk-order")
    services.record_status_notifications(
        [report(cp.pk, "Charging", T0 + timedelta(minutes=5)), report(cp.pk, "Preparing", T0)]
    )
    assert Connector.objects.get(charge_point=cp, connector_id=1).status == "Charging"
    assert list(
        StatusNotification.objects.filter(charge_point=cp).order_by("id").values_list("status", flat=True)
    ) == ["Charging", "Preparing"]


def test_inserted_rows_are_stored_as_bulk_create_stores_them():
    cp = ChargePoint.objects.create(charge_point_id="insert-rows")
    fields = {
        "charge_point_id": cp.pk,
        "status": "Faulted",
        "error_code": "GroundFailure",
        "info": "café",
        "status_timestamp": T0,
    }
    before = datetime.now(timezone.utc)
    Connector.objects.bulk_create([Connector(connector_id=1, **fields)])
    insert_rows(Connector, [{"connector_id": 2, **fields}])
    by_orm, inserted = Connector.objects.filter(charge_point=cp).order_by("connector_id").values()
    assert inserted["updated_at"] >= before  # auto_now, as bulk_create sets it
    differing = {"id", "connector_id", "updated_at"}
    assert {k: v for k, v in inserted.items() if k not in differing} == {
        k: v for k, v in by_orm.items() if k not in differing
    }


def test_each_inserted_row_keeps_its_own_values_and_defaults():
    cp = ChargePoint.objects.create(charge_point_id="insert-columns")
    same_instant = T0.astimezone(timezone(timedelta(hours=-5)))
    insert_rows(
        Connector,
        [
            {
                "charge_point_id": cp.pk,
                "connector_id": 1,
                "status": "Faulted",
                "info": "x",
                "status_timestamp": T0,
            },
            {
                "charge_point_id": cp.pk,
                "connector_id": 2,
                "status": lazystr("Charging"),
                "status_timestamp": same_instant,
            },
            {"charge_point_id": cp.pk, "connector_id": 3, "status_timestamp": T0 + timedelta(seconds=1)},
        ],
    )
    stored = Connector.objects.filter(charge_point=cp).order_by("connector_id")
    assert [(c.status, c.info, c.status_timestamp) for c in stored] == [
        ("Faulted", "x", T0),
        ("Charging", "", T0),
        (Connector._meta.get_field("status").get_default(), "", T0 + timedelta(seconds=1)),
    ]


@pytest.mark.parametrize(
    ("model", "field_name", "value"),
    [
        (Connector, "status", "Charging"),
        (Connector, "status", lazystr("Charging")),  # not a str: Django's own way
        (Connector, "info", None),
        (Connector, "connector_id", 2),
        (Connector, "connector_id", "2"),
        (Connector, "id", 5),
        (Connector, "charge_point", 7),  # a foreign key: its target's value
        (Connector, "status_timestamp", T0),
        (Connector, "status_timestamp", T0.astimezone(timezone(timedelta(hours=-5)))),
        (Connector, "status_timestamp", None),
        (ChargePoint, "is_connected", True),
        (ChargePoint, "server_process", None),
    ],
)
def test_values_are_prepared_as_django_prepares_them(model, field_name, value):
    field = model._meta.get_field(field_name)
    assert value_preparer(field, connection)(value) == field.get_db_prep_save(value, connection)


def test_disconnections_in_one_batch_keep_each_charge_points_own_times():
    beating = ChargePoint.objects.create(charge_point_id="gone-1", is_connected=True, last_heartbeat_at=T0)
    silent = ChargePoint.objects.create(charge_point_id="gone-2", is_connected=True, last_heartbeat_at=T0)
    later = T0 + timedelta(minutes=3)
    services.record_disconnections(
        [
            services.Disconnection(beating.pk, later, later, last_heartbeat_at=later),
            services.Disconnection(silent.pk, later, T0 + timedelta(minutes=1), last_heartbeat_at=None),
        ]
    )
    beating.refresh_from_db()
    silent.refresh_from_db()
    assert (beating.is_connected, beating.disconnected_at, beating.last_heartbeat_at) == (False, later, later)
    assert (silent.is_connected, silent.last_seen_at, silent.last_heartbeat_at) == (
        False,
        T0 + timedelta(minutes=1),
        T0,
    )


def test_a_status_notification_for_a_deleted_charge_point_fails_alone_in_its_batch():
    kept, gone_pk = kept_and_deleted("bulk")
    status_notifications = writer.Write(services.record_status_notifications)
    results = writer.write_batch(
        [
            (status_notifications, report(kept.pk, "Available", T0)),
            (status_notifications, report(gone_pk, "Available", T0)),
        ]
    )
    assert results[0] is None
    assert isinstance(results[1], Exception)
    assert Connector.objects.get(charge_point=kept).status == "Available"
    assert StatusNotification.objects.filter(charge_point=kept).count() == 1
    assert not StatusNotification.objects.filter(charge_point_id=gone_pk).exists()


def test_a_boot_of_a_deleted_charge_point_fails_alone_in_its_batch():
    kept, gone_pk = kept_and_deleted("boot")
    boots = writer.Write(services.record_boots)
    identity = {"charge_point_vendor": "V", "charge_point_model": "M"}
    results = writer.write_batch(
        [(boots, services.Boot(kept.pk, identity, T0)), (boots, services.Boot(gone_pk, identity, T0))]
    )
    assert results[0] == "Accepted"
    assert isinstance(results[1], ChargePoint.DoesNotExist)
    kept.refresh_from_db()
    assert (kept.charge_point_model, kept.last_boot_at) == ("M", T0)


def test_a_shared_batch_whose_commit_fails_keeps_the_work_of_the_other_calls():
    kept, gone_pk = kept_and_deleted("shared")

    def store(charge_point_pk: int) -> int:
        return StatusNotification.objects.create(
            charge_point_id=charge_point_pk, connector_id=1, status="Available", received_at=T0
        ).pk

    results = writer.write_batch(
        [(writer.calls, (store, (kept.pk,), {})), (writer.calls, (store, (gone_pk,), {}))]
    )
    assert isinstance(results[0], int)
    assert isinstance(results[1], Exception)
    assert StatusNotification.objects.filter(charge_point=kept).count() == 1
