"""OCPP 1.6 validation, error codes and naming: our small layer over the `ocpp` package.

The `ocpp` package is right about the message classes and schemas, but on the wire
it sends the OCPP 2.0 code `FormatViolation` where 1.6 says `FormationViolation`,
swaps NotImplemented/NotSupported for unknown actions, and validates every payload
with jsonschema in a thread-pool executor. Here the same schemas (shipped inside the
package) are compiled once with fastjsonschema and run inline, errors carry the 1.6
codes. The OCPP-J framing itself is shared by every version (chargepoints.session.framing).
"""

from __future__ import annotations

import enum
import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import fields
from functools import lru_cache
from pathlib import Path
from typing import Any

import fastjsonschema
import ocpp
from fastjsonschema.draft07 import CodeGeneratorDraft07
from fastjsonschema.ref_resolver import RefResolver
from ocpp.exceptions import (
    FormationViolationError,
    NotImplementedError as OCPPNotImplementedError,
    NotSupportedError,
    OCPPError,
    PropertyConstraintViolationError,
    ProtocolError,
    TypeConstraintViolationError,
)
from ocpp.v16.enums import Action

from ..timestamps import format_timestamp, parse_timestamp  # noqa: F401 - the 1.6 session's names for them

SCHEMA_DIR = Path(ocpp.__file__).parent / "v16" / "schemas"

OCPP16_ACTIONS = frozenset(action.value for action in Action)


def frame_error(description: str) -> OCPPError:
    """The 1.6 error for a frame that is not an OCPP-J message (2.0.1 calls it FormatViolation)."""
    return FormationViolationError(description=description)


# --- validation -------------------------------------------------------------------

_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}(:?\d{2})?)?$")


#: OCPP 1.6's ``integer`` is a 32-bit signed integer; its JSON schemas say only "integer".
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1


def _bound_integers(schema: Any) -> Any:
    """Every ``"type": "integer"`` of a schema bounded to 1.6's 32-bit range.

    An unbounded JSON integer reached the database (or Python's C code) and failed
    there; bounded, it gets a TypeConstraintViolation like any other wrong value.
    """
    if isinstance(schema, list):
        return [_bound_integers(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    bounded = {k: _bound_integers(v) for k, v in schema.items()}
    if bounded.get("type") == "integer":
        bounded.setdefault("minimum", INT32_MIN)
        bounded.setdefault("maximum", INT32_MAX)
    return bounded


def _strip(schema: Any, keys: set[str]) -> Any:
    if isinstance(schema, dict):
        return {k: _strip(v, keys) for k, v in schema.items() if k not in keys}
    if isinstance(schema, list):
        return [_strip(v, keys) for v in schema]
    return schema


class _SetEnumCodeGenerator(CodeGeneratorDraft07):
    """fastjsonschema's draft-07 code, with an enum of strings checked by one set lookup.

    fastjsonschema tests an enum value by value (``x == 'Wh' or x == 'kWh' or ...``):
    up to 22 comparisons for a measurand and six enums per sampled value, a quarter
    of a MeterValues message's validation time.
    """

    def generate_enum(self) -> None:
        enum = self._definition["enum"]
        if not (isinstance(enum, list) and enum and all(type(value) is str for value in enum)):
            super().generate_enum()
            return
        members = "{" + ", ".join(map(repr, enum)) + "}"  # a set literal compiles to a constant
        with self.l("if not (isinstance({variable}, str) and {variable} in {}):", members):
            self.exc("{name} must be one of {}", self.e(enum), rule="enum")


def _compile(schema: dict, formats: dict) -> Callable[[Any], Any]:
    """What ``fastjsonschema.compile(schema, formats=formats)`` does, with _SetEnumCodeGenerator."""
    resolver = RefResolver.from_schema(schema, store={})
    generator = _SetEnumCodeGenerator(schema, resolver=resolver, formats=formats)
    namespace = generator.global_state
    exec(generator.func_code, namespace)
    return functools.partial(namespace[resolver.get_scope_name()], custom_formats=formats)


@functools.cache
def _validator(schema_name: str, lenient: bool, partial: bool = False):
    schema = json.loads((SCHEMA_DIR / f"{schema_name}.json").read_text(encoding="utf-8-sig"))
    if partial:
        # Some of the payload's fields (e.g. a plugin's decision): each is checked
        # fully, but none of the top-level fields is required.
        schema.pop("required", None)
    # multipleOf 0.1 on charging-rate floats fails on binary floats (21.4 / 0.1);
    # the charge point rounds to its own precision anyway.
    # "id" and "$schema" only at the top: ClearChargingProfile has a property named "id".
    schema.pop("id", None)
    schema.pop("$schema", None)
    strip = {"multipleOf"}
    if lenient:
        strip.add("additionalProperties")
    return _compile(
        _bound_integers(_strip(schema, strip)), {"date-time": _DATE_TIME.pattern, "uri": lambda _: True}
    )


def has_schema(action: str) -> bool:
    return (SCHEMA_DIR / f"{action}.json").exists()


def compile_validators(actions: Iterable[str], *, lenient: bool) -> None:
    """Compile the validators of CALLs now, at server start-up: not in the first
    session that sends each action, which after a restart is a reconnect storm's
    (compiling one takes milliseconds)."""
    for action in actions:
        if has_schema(action):
            _validator(action, lenient, False)  # the key validate() uses


def validate(
    action: str,
    payload: dict,
    *,
    response: bool = False,
    lenient: bool = False,
    partial: bool = False,
) -> None:
    """Validate a 1.6 payload, raising the OCPP error a CALLERROR should carry."""
    name = f"{action}Response" if response else action
    try:
        _validator(name, lenient, partial)(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise schema_error(exc) from None


class InvalidAnswer(OCPPError):
    """A charge point's CALLRESULT that breaks its 1.6 response schema (e.g. no ``status``).

    An OCPPError with the code of the broken rule, so that callers catching
    OCPPError still do; the command service tells it from a CALLERROR and records
    it as an invalid answer, with the payload received.
    """

    def __init__(self, action: str, payload: dict, error: OCPPError) -> None:
        super().__init__(
            description=f"The answer is not a valid {action}Response: {error.description}",
            details=error.details,
        )
        self.code = error.code
        self.action = action
        self.payload = payload


def validate_answer(action: str, payload: dict) -> None:
    """Validate a charge point's CALLRESULT to ``action`` (leniently), raising InvalidAnswer."""
    try:
        validate(action, payload, response=True, lenient=True)
    except OCPPError as exc:
        raise InvalidAnswer(action, payload, exc) from None


def schema_error(exc: fastjsonschema.JsonSchemaValueException) -> OCPPError:
    field = (exc.name or "").removeprefix("data.").removeprefix("data") or "payload"
    details = {"field": field, "cause": exc.message}
    if exc.rule == "required":
        return ProtocolError(description=f"Required field missing: {exc.message}", details=details)
    if exc.rule in {"type", "maxLength"}:
        return TypeConstraintViolationError(description=exc.message, details=details)
    if exc.rule in {"minimum", "maximum"} and exc.rule_definition in {INT32_MIN, INT32_MAX}:
        return TypeConstraintViolationError(
            description=f"{field} is outside the 32-bit integer range of OCPP 1.6",
            details=details,
        )
    if exc.rule in {"additionalProperties"}:
        return FormationViolationError(description=exc.message, details=details)
    return PropertyConstraintViolationError(description=exc.message, details=details)


def unknown_action_error(action: str) -> OCPPError:
    """NotImplemented for an action 1.6 does not define, NotSupported for one we do not take."""
    if action in OCPP16_ACTIONS:
        return NotSupportedError(
            description=f"{action} is not supported by the Central System",
            details={"action": action},
        )
    return OCPPNotImplementedError(
        description=f"{action} is not an OCPP 1.6 action", details={"action": action}
    )


# --- naming -----------------------------------------------------------------------

_FIRST_CAP = re.compile(r"(.)([A-Z][a-z]+)")
_ALL_CAP = re.compile(r"([a-z0-9])([A-Z])")


@lru_cache(maxsize=4096)
def _snake_key(key: str) -> str:
    return _ALL_CAP.sub(r"\1_\2", _FIRST_CAP.sub(r"\1_\2", key)).lower()


@lru_cache(maxsize=4096)
def _camel_key(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def snake_case(data: Any) -> Any:
    """camelCase keys to snake_case, recursively (memoised per key).

    Only containers recurse: a MeterValues message has five times more values than
    dicts and lists.
    """
    if isinstance(data, dict):
        return {_snake_key(k): snake_case(v) if isinstance(v, (dict, list)) else v for k, v in data.items()}
    if isinstance(data, list):
        return [snake_case(v) if isinstance(v, (dict, list)) else v for v in data]
    return data


@functools.cache
def _payload_keys(cls: type) -> tuple[tuple[str, str], ...]:
    """A dataclass's (field name, camelCase key) pairs, worked out once per class."""
    return tuple((f.name, _camel_key(f.name)) for f in fields(cls))


def to_payload(obj: Any) -> Any:
    """An ocpp call/call_result dataclass as an OCPP-J payload: camelCase, no Nones.

    Only what may hold other values recurses, as in ``snake_case``.
    """
    if hasattr(type(obj), "__dataclass_fields__") and not isinstance(obj, type):
        out = {}
        for name, key in _payload_keys(type(obj)):  # type: ignore[arg-type]  # mypy: a class is Hashable
            value = getattr(obj, name)
            if value is not None:
                out[key] = value if type(value) in _PLAIN else to_payload(value)
        return out
    if isinstance(obj, dict):
        return {_camel_key(k): to_payload(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        return [to_payload(v) for v in obj if v is not None]
    if isinstance(obj, str) and isinstance(obj, enum.Enum):  # str enums
        return obj.value
    return obj


#: The types of the values a payload holds as they are (not their subclasses: a str
#: enum goes as its value).
_PLAIN = frozenset((str, int, float, bool))
