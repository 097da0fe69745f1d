"""Limits on what one charge point, or one network address, may make the server do.

- ``CallRate``: a token bucket per session for the CALLs a charge point sends. A
  CALL past it is answered with a CALLERROR before it is validated or handled;
  a charge point that stays past it is closed with 1008 (policy violation).
- The per-address accounting of WebSocket connections and failed handshakes:
  ``connection_allowed``/``connection_opened``/``connection_closed`` and
  ``handshake_allowed``/``handshake_failed``. An address that failed too many
  handshakes within a window is refused until the window has passed.
- ``check_meter_values``: a cap on the sampled values one MeterValues may carry.

Every limit is a setting (``LEVITY_*``, see the README and docs/security.md).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from typing import Any

from ocpp.exceptions import OccurenceConstraintViolationError

from levity_site.conf import settings

logger = logging.getLogger(__name__)

#: RFC 6455's "policy violation": the close code of a charge point that stays past its rate.
CLOSE_POLICY_VIOLATION = 1008


class CallRate:
    """A token bucket: ``rate`` CALLs a second on average, ``burst`` at once.

    ``admit()`` takes a token for one CALL. The charge point is *sustaining* an
    excess once its CALLs have been refused for ``close_after`` seconds without
    it falling back under the rate (leaving a whole token unused) meanwhile.
    A rate of 0 admits everything.
    """

    __slots__ = ("burst", "close_after", "rate", "refusing_since", "tokens", "updated")

    def __init__(self, rate: float, burst: int, close_after: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.close_after = close_after
        self.tokens = float(self.burst)
        self.updated = time.monotonic()
        self.refusing_since: float | None = None

    @classmethod
    def from_settings(cls) -> CallRate:
        return cls(
            settings.LEVITY_CALL_RATE,
            settings.LEVITY_CALL_BURST,
            settings.LEVITY_CALL_RATE_CLOSE_AFTER_SECONDS,
        )

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def admit(self, now: float | None = None) -> bool:
        """Take a token for one CALL; False when there is none (answer it with a CALLERROR)."""
        if self.rate <= 0:
            return True
        now = time.monotonic() if now is None else now
        self._refill(now)
        if self.tokens >= 1:
            if self.tokens >= min(2, self.burst):
                self.refusing_since = None  # fell back under the rate
            self.tokens -= 1
            return True
        if self.refusing_since is None:
            self.refusing_since = now
        return False

    def sustained(self, now: float | None = None) -> bool:
        """Whether the charge point has stayed past the rate for ``close_after`` seconds."""
        if self.refusing_since is None:
            return False
        now = time.monotonic() if now is None else now
        return now - self.refusing_since >= self.close_after

    def delay(self, now: float | None = None) -> float:
        """Seconds until the next token: how long to stop reading from a charge point past it."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate


def over_rate_description(rate: CallRate) -> str:
    return f"More than {rate.rate:g} messages a second (burst {rate.burst}); try again later"


# --- per address -------------------------------------------------------------------

#: Open WebSocket sessions by address (this server process).
_open_connections: dict[str, int] = defaultdict(int)
#: Times of the failed handshakes of each address within the window (this server process).
_failed_handshakes: dict[str, deque[float]] = {}


def connection_allowed(address: str) -> bool:
    """Whether ``address`` may open one more WebSocket session (``LEVITY_MAX_CONNECTIONS_PER_ADDRESS``)."""
    limit = settings.LEVITY_MAX_CONNECTIONS_PER_ADDRESS
    return not address or limit == 0 or _open_connections.get(address, 0) < limit


def connection_opened(address: str) -> None:
    if address:
        _open_connections[address] += 1


def connection_closed(address: str) -> None:
    if address and address in _open_connections:
        _open_connections[address] -= 1
        if _open_connections[address] <= 0:
            del _open_connections[address]


def _recent_failures(address: str, now: float) -> deque[float] | None:
    failures = _failed_handshakes.get(address)
    if failures is None:
        return None
    window = settings.LEVITY_HANDSHAKE_FAILURE_WINDOW_SECONDS
    while failures and now - failures[0] >= window:
        failures.popleft()
    if not failures:
        del _failed_handshakes[address]
        return None
    return failures


def handshake_allowed(address: str, now: float | None = None) -> bool:
    """Whether ``address`` may try a handshake: False once it failed too many in the window.

    Call it before doing any work for a handshake (looking a charge point up,
    checking a password); refuse the handshake when it is False.
    """
    limit = settings.LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS
    if not address or limit == 0:
        return True
    failures = _recent_failures(address, time.monotonic() if now is None else now)
    return failures is None or len(failures) < limit


def handshake_failed(address: str, reason: str, now: float | None = None) -> None:
    """Count a failed handshake of ``address`` (refused id, no subprotocol, bad credentials)."""
    if not address or settings.LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS == 0:
        return
    now = time.monotonic() if now is None else now
    failures = _recent_failures(address, now)
    if failures is None:
        failures = _failed_handshakes[address] = deque()
    failures.append(now)
    if len(failures) == settings.LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS:
        logger.warning(
            "%s: %d failed handshakes within %g s (last: %s); its handshakes are refused for now",
            address,
            len(failures),
            settings.LEVITY_HANDSHAKE_FAILURE_WINDOW_SECONDS,
            reason,
        )


def reset() -> None:
    """Forget all per-address accounting (for tests in one process)."""
    _open_connections.clear()
    _failed_handshakes.clear()


# --- message contents ----------------------------------------------------------------


def check_meter_values(action: str, payload: Any) -> None:
    """Raise OccurenceConstraintViolation if a MeterValues carries too many sampled values.

    Counted before the message is validated, so that a huge one costs no schema check.
    """
    if action != "MeterValues":
        return  # before the setting is read: a read costs more than the check (every CALL)
    limit = settings.LEVITY_MAX_SAMPLED_VALUES
    if limit == 0 or not isinstance(payload, dict):
        return
    meter_values = payload.get("meterValue")
    if not isinstance(meter_values, list):
        return
    count = 0
    for meter_value in meter_values:
        sampled = meter_value.get("sampledValue") if isinstance(meter_value, dict) else None
        count += len(sampled) if isinstance(sampled, list) else 1
    if count > limit:
        raise OccurenceConstraintViolationError(
            description=f"MeterValues carries {count} sampled values; at most {limit} are accepted",
            details={"field": "meterValue"},
        )
