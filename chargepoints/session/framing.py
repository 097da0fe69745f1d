"""OCPP-J framing, the same for every OCPP version: frames to messages and back.

A frame that is not an OCPP-J message raises ``FrameError``; the session answers it
with its version's error code (1.6's FormationViolation, 2.0.1's FormatViolation).
JSON goes through orjson.
"""

from __future__ import annotations

import orjson
from ocpp.exceptions import OCPPError
from ocpp.messages import Call, CallError, CallResult, MessageType

MAX_MESSAGE_ID_LENGTH = 36
#: The id used in a CALLERROR when the message id of a frame cannot be read.
UNKNOWN_MESSAGE_ID = "-1"


class FrameError(Exception):
    """A frame that cannot be routed; answered with a CALLERROR."""

    def __init__(self, description: str, unique_id: str = UNKNOWN_MESSAGE_ID):
        super().__init__(description)
        self.description = description
        self.unique_id = unique_id


def decode(raw: str | bytes) -> Call | CallResult | CallError:
    """Parse one OCPP-J frame, raising FrameError when it is not a message."""
    try:
        frame = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise FrameError("Message is not valid JSON") from None
    if not isinstance(frame, list) or not frame:
        raise FrameError("Message is not an OCPP-J array")
    message_type = frame[0]
    unique_id = frame[1] if len(frame) > 1 and isinstance(frame[1], str) else None
    if unique_id is None:
        raise FrameError("Message id is missing or not a string")
    if len(unique_id) > MAX_MESSAGE_ID_LENGTH:
        raise FrameError(f"Message id is longer than {MAX_MESSAGE_ID_LENGTH} characters", unique_id)
    if message_type == MessageType.Call:
        if len(frame) != 4:
            raise FrameError("A CALL has exactly 4 elements", unique_id)
        if not isinstance(frame[2], str):
            raise FrameError("Action must be a string", unique_id)
        if not isinstance(frame[3], dict):
            raise FrameError("Payload must be a JSON object", unique_id)
        return Call(unique_id, frame[2], frame[3])
    if message_type == MessageType.CallResult:
        if len(frame) != 3 or not isinstance(frame[2], dict):
            raise FrameError("A CALLRESULT is [3, id, {payload}]", unique_id)
        return CallResult(unique_id, frame[2])
    if message_type == MessageType.CallError:
        if len(frame) < 4:
            raise FrameError("A CALLERROR has at least 4 elements", unique_id)
        details = frame[4] if len(frame) > 4 and isinstance(frame[4], dict) else {}
        return CallError(unique_id, str(frame[2]), str(frame[3]), details)
    raise FrameError(f"Unknown message type {message_type!r}", unique_id)


def encode_call(unique_id: str, action: str, payload: dict) -> str:
    return orjson.dumps([MessageType.Call, unique_id, action, payload]).decode()


def encode_call_result(unique_id: str, payload: dict) -> str:
    return orjson.dumps([MessageType.CallResult, unique_id, payload]).decode()


def encode_call_error(unique_id: str, error: OCPPError) -> str:
    details = error.details if isinstance(error.details, dict) else {}
    try:
        return orjson.dumps(
            [MessageType.CallError, unique_id, error.code, error.description or "", details]
        ).decode()
    except TypeError:
        # Details that orjson cannot encode (e.g. an ocpp message object) are dropped.
        return orjson.dumps(
            [MessageType.CallError, unique_id, error.code, error.description or "", {}]
        ).decode()
