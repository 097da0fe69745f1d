"""The metrics counted as events happen (in this process; shared when multiprocess).

None has a charge point label: per-charge-point values are database state, read at
scrape time by ``collectors.OCPPStateCollector``, so their label values come and go
with the charge points in the database. Label values here are bounded: OCPP 1.6
action names (others are counted as "Unknown"), CALLERROR codes and status enums.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from chargepoints.ocpp16.protocol import OCPP16_ACTIONS

#: CALLs a charge point may send to the Central System.
CP_ACTIONS = (
    "Authorize",
    "BootNotification",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "Heartbeat",
    "MeterValues",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    # The security extension.
    "LogStatusNotification",
    "SecurityEventNotification",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
)
UNKNOWN_ACTION = "Unknown"

MSG_HANDLING_SECONDS = Histogram(
    "ocpp_msg_handling_seconds",
    "Time from taking up a CALL from a charge point to its answer being sent, by action.",
    ["action"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
MESSAGES = Counter("ocpp_messages", "CALLs received from charge points, by action.", ["action"])
MSG_ERRORS = Counter(
    "ocpp_msg_errors",
    "CALLERRORs sent in answer to charge points, by action and OCPP error code.",
    ["action", "error_code"],
)
BOOTS = Counter("ocpp_boots", "BootNotifications received.")
STATUS_NOTIFICATIONS = Counter(
    "ocpp_status_notifications",
    "StatusNotifications received, by status and errorCode (faults: error_code!=NoError).",
    ["status", "error_code"],
)
#: The security events of the OCPP 1.6 security whitepaper (its appendix 1); a charge
#: point's own types are counted as "Other", so that the label stays bounded.
SECURITY_EVENT_TYPES = (
    "FirmwareUpdated",
    "FailedToAuthenticateAtCentralSystem",
    "CentralSystemFailedToAuthenticate",
    "SettingSystemTime",
    "StartupOfTheDevice",
    "ResetOrReboot",
    "SecurityLogWasCleared",
    "ReconfigurationOfSecurityParameters",
    "MemoryExhaustion",
    "InvalidMessages",
    "AttemptedReplayAttacks",
    "TamperDetectionActivated",
    "InvalidFirmwareSignature",
    "InvalidFirmwareSigningCertificate",
    "InvalidCentralSystemCertificate",
    "InvalidChargePointCertificate",
    "InvalidTLSVersion",
    "InvalidTLSCipherSuite",
)
OTHER_SECURITY_EVENT = "Other"
SECURITY_EVENTS = Counter(
    "ocpp_security_events",
    "SecurityEventNotifications received (each event once), by type; non-standard types as Other.",
    ["type"],
)
#: The kinds of plugins.signals.connection_refused.
REFUSAL_KINDS = ("authentication", "policy", "invalid", "throttled", "tls")
CONNECTIONS_REFUSED = Counter(
    "ocpp_connections_refused",
    "Charge point connections refused before a session, by kind (authentication, policy, invalid, "
    "throttled, tls).",
    ["kind"],
)
CONNECTIONS = Counter("ocpp_connections", "Charge point WebSocket sessions opened.")
DISCONNECTIONS = Counter("ocpp_disconnections", "Charge point WebSocket sessions closed.")

# Series that exist from start-up, so rate() and increase() see the first event.
for _action in CP_ACTIONS:
    MESSAGES.labels(_action)
    MSG_HANDLING_SECONDS.labels(_action)
for _type in (*SECURITY_EVENT_TYPES, OTHER_SECURITY_EVENT):
    SECURITY_EVENTS.labels(_type)
for _kind in REFUSAL_KINDS:
    CONNECTIONS_REFUSED.labels(_kind)


def security_event_label(event_type: str) -> str:
    return event_type if event_type in SECURITY_EVENT_TYPES else OTHER_SECURITY_EVENT


def action_label(action: str | None) -> str:
    if action is None or action not in OCPP16_ACTIONS:
        return UNKNOWN_ACTION
    return action


# Each action's counter and histogram children, looked up once (labels() costs more
# than the increment itself).
_children: dict[str, tuple] = {}


def observe_message(action: str | None, duration: float | None, error_code: str | None) -> None:
    """Count a message; ``action`` None is a frame that could not be read (not timed)."""
    label = action_label(action)
    children = _children.get(label)
    if children is None:
        children = _children[label] = (
            MESSAGES.labels(label),
            MSG_HANDLING_SECONDS.labels(label),
        )
    children[0].inc()
    if duration is not None:
        children[1].observe(duration)
    if error_code:
        MSG_ERRORS.labels(label, error_code).inc()
