"""OCPP date-times as stored: every protocol version and the data layer read and write them here."""

from __future__ import annotations

from datetime import datetime, timezone

from ocpp.exceptions import PropertyConstraintViolationError


def parse_timestamp(value: str) -> datetime:
    """An OCPP date-time as an aware UTC datetime; a missing offset means UTC."""
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise PropertyConstraintViolationError(
            description=f"{value!r} is not a date-time", details={"value": value}
        ) from None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        # 9999-12-31T23:00-05:00 or 0001-01-01T00:30+01:00: no UTC date-time exists.
        raise PropertyConstraintViolationError(
            description=f"{value!r} is outside the range of representable UTC date-times",
            details={"value": value},
        ) from None


def format_timestamp(value: datetime) -> str:
    """An aware datetime as OCPP writes it: UTC, milliseconds, ``Z``."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{value.microsecond // 1000:03d}Z"
    )
