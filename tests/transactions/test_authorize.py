"""Authorize from the ID tag table, over a real daphne server: exact idTagInfo frames."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from transactions.models import IdTag

pytestmark = pytest.mark.django_db(transaction=True)

FUTURE = datetime(2099, 1, 1, tzinfo=timezone.utc)
FUTURE_TEXT = "2099-01-01T00:00:00.000Z"


async def authorize(raw_ws, cp_id, id_tag: str):
    async with raw_ws(cp_id) as session:
        return await session.exchange([2, "a-1", "Authorize", {"idTag": id_tag}])


async def test_accepted_tag_gets_accepted_with_parent_and_expiry(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-1", parent_id_tag="FLEET-7", expiry_date=FUTURE)
    assert await authorize(raw_ws, cp_id, "CARD-1") == [
        3,
        "a-1",
        {"idTagInfo": {"status": "Accepted", "expiryDate": FUTURE_TEXT, "parentIdTag": "FLEET-7"}},
    ]


async def test_accepted_tag_without_parent_or_expiry_gets_status_only(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-2")
    assert await authorize(raw_ws, cp_id, "CARD-2") == [
        3,
        "a-1",
        {"idTagInfo": {"status": "Accepted"}},
    ]


async def test_blocked_tag_gets_blocked(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-3", status="Blocked", parent_id_tag="FLEET-7")
    assert await authorize(raw_ws, cp_id, "CARD-3") == [
        3,
        "a-1",
        {"idTagInfo": {"status": "Blocked", "parentIdTag": "FLEET-7"}},
    ]


async def test_tag_whose_expiry_has_passed_gets_expired(raw_ws, cp_id):
    past = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
    await IdTag.objects.acreate(id_tag="CARD-4", expiry_date=past)
    assert await authorize(raw_ws, cp_id, "CARD-4") == [
        3,
        "a-1",
        {
            "idTagInfo": {
                "status": "Expired",
                "expiryDate": past.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            }
        },
    ]


async def test_tag_marked_expired_by_the_operator_gets_expired(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-5", status="Expired")
    assert await authorize(raw_ws, cp_id, "CARD-5") == [
        3,
        "a-1",
        {"idTagInfo": {"status": "Expired"}},
    ]


async def test_unknown_tag_gets_invalid(raw_ws, cp_id):
    assert await authorize(raw_ws, cp_id, "NOBODY") == [
        3,
        "a-1",
        {"idTagInfo": {"status": "Invalid"}},
    ]


async def test_tag_marked_invalid_by_the_operator_gets_invalid(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-6", status="Invalid")
    assert await authorize(raw_ws, cp_id, "CARD-6") == [
        3,
        "a-1",
        {"idTagInfo": {"status": "Invalid"}},
    ]


async def test_tag_in_an_active_transaction_gets_concurrent_tx(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-7", parent_id_tag="FLEET-7", expiry_date=FUTURE)
    async with raw_ws(cp_id) as session:
        started = await session.exchange(
            [
                2,
                "st-1",
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": "CARD-7",
                    "meterStart": 0,
                    "timestamp": "2025-03-01T10:00:00Z",
                },
            ]
        )
        assert started[2]["idTagInfo"]["status"] == "Accepted"
        answer = await session.exchange([2, "a-2", "Authorize", {"idTag": "CARD-7"}])
    assert answer == [
        3,
        "a-2",
        {
            "idTagInfo": {
                "status": "ConcurrentTx",
                "expiryDate": FUTURE_TEXT,
                "parentIdTag": "FLEET-7",
            }
        },
    ]


async def test_tag_is_accepted_again_once_its_transaction_stopped(raw_ws, cp_id):
    await IdTag.objects.acreate(id_tag="CARD-8")
    async with raw_ws(cp_id) as session:
        started = await session.exchange(
            [
                2,
                "st-1",
                "StartTransaction",
                {
                    "connectorId": 1,
                    "idTag": "CARD-8",
                    "meterStart": 0,
                    "timestamp": "2025-03-01T10:00:00Z",
                },
            ]
        )
        await session.exchange(
            [
                2,
                "sp-1",
                "StopTransaction",
                {
                    "transactionId": started[2]["transactionId"],
                    "meterStop": 10,
                    "timestamp": "2025-03-01T11:00:00Z",
                },
            ]
        )
        answer = await session.exchange([2, "a-3", "Authorize", {"idTag": "CARD-8"}])
    assert answer == [3, "a-3", {"idTagInfo": {"status": "Accepted"}}]


async def test_authorize_messages_sent_at_once_each_get_their_own_tags_status(raw_ws, cp_id):
    past = datetime.now(timezone.utc) - timedelta(days=1)
    await IdTag.objects.abulk_create(
        [
            IdTag(id_tag="MIX-OK"),
            IdTag(id_tag="MIX-BLOCKED", status="Blocked"),
            IdTag(id_tag="MIX-EXPIRED", expiry_date=past),
            IdTag(id_tag="MIX-BUSY"),
        ]
    )
    async with raw_ws(f"{cp_id}-busy") as busy:
        started = await busy.exchange(
            [
                2,
                "s",
                "StartTransaction",
                {"connectorId": 1, "idTag": "MIX-BUSY", "meterStart": 0, "timestamp": "2026-01-01T10:00:00Z"},
            ]
        )
        assert started[2]["idTagInfo"] == {"status": "Accepted"}
        tags = ["MIX-OK", "MIX-BLOCKED", "MIX-EXPIRED", "MIX-BUSY", "MIX-UNKNOWN", "mix-ok"] * 3
        answers = await asyncio.gather(
            *(authorize(raw_ws, f"{cp_id}-{i}", tag) for i, tag in enumerate(tags))
        )
    statuses = [answer[2]["idTagInfo"]["status"] for answer in answers]
    assert statuses == ["Accepted", "Blocked", "Expired", "ConcurrentTx", "Invalid", "Invalid"] * 3
