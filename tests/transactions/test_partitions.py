"""transactions.partitions: the month boundaries of the meter values' partitions (UTC)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from transactions.partitions import month_start

pytestmark = pytest.mark.once  # no database at all

UTC = timezone.utc


@pytest.mark.parametrize(
    ("moment", "months_later", "expected"),
    [
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), 0, datetime(2026, 12, 1, tzinfo=UTC)),
        (datetime(2026, 12, 31, 23, 59, tzinfo=UTC), 1, datetime(2027, 1, 1, tzinfo=UTC)),
        (datetime(2026, 1, 15, tzinfo=UTC), -1, datetime(2025, 12, 1, tzinfo=UTC)),
        (datetime(2026, 3, 1, tzinfo=UTC), -14, datetime(2025, 1, 1, tzinfo=UTC)),
        # 00:30 on 1 March in UTC+2 is still February in UTC.
        (
            datetime(2026, 3, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))),
            0,
            datetime(2026, 2, 1, tzinfo=UTC),
        ),
    ],
)
def test_month_start_is_the_first_instant_of_the_utc_month(moment, months_later, expected):
    assert month_start(moment, months_later) == expected
