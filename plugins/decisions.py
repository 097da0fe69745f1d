"""Answers decided by BEFORE hooks (``PluginContext.respond``): checking, ranking, applying.

The rule is docs/plugins.md, "Deciding the answer": the core handler always runs; for
Authorize, StartTransaction and StopTransaction the decision is the idTagInfo, for the
other actions its fields replace the core answer's; of several decisions the first
stands unless a later one is more restrictive.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from ocpp.exceptions import OCPPError
from ocpp.v16 import call_result

from chargepoints.ocpp16 import protocol

from .base import PluginHook

logger = logging.getLogger("levity.plugins")

#: Actions whose answer is an idTagInfo: the decision is the idTagInfo.
ID_TAG_INFO_ACTIONS = frozenset({"Authorize", "StartTransaction", "StopTransaction"})
#: How restrictive a decided status is; a status not listed ranks highest.
STATUS_RANK = {None: 0, "Accepted": 0, "Pending": 1}


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def status_of(decision: Any) -> str | None:
    """The status a decision gives: idTagInfo.status, or the answer's own status."""
    info = _get(decision, "id_tag_info")
    status = _get(info, "status") if info is not None else _get(decision, "status")
    return None if status is None else str(getattr(status, "value", status))


def rank(decision: Any) -> int:
    """0 = accepts, higher = more restrictive (Pending 1, any refusal 2)."""
    return STATUS_RANK.get(status_of(decision), 2)


def check(hook: PluginHook, decision: Any) -> None:
    """Raise TypeError/ValueError, saying what is wrong, for a decision that cannot be sent."""
    cls = getattr(call_result, hook.action)
    fields = [f.name for f in dataclasses.fields(cls)]
    if isinstance(decision, dict):
        unknown = sorted(set(decision) - set(fields))
        if unknown:
            raise TypeError(f"{unknown} are not fields of the {hook.action} answer; it has {fields}")
    elif not isinstance(decision, cls):
        raise TypeError(
            f"the answer to {hook.action} is call_result.{hook.action} or a dict of its "
            f"fields, not {type(decision).__name__}"
        )
    if hook.action in ID_TAG_INFO_ACTIONS and _get(decision, "id_tag_info") is None:
        raise ValueError(f"a decision on {hook.action} gives id_tag_info")
    payload = protocol.to_payload({k: v for k, v in _items(decision) if k != "transaction_id"})
    try:
        protocol.validate(hook.action, payload, response=True, partial=True)
    except OCPPError as exc:
        raise ValueError(f"not a valid {hook.action} answer: {exc.description}") from None


def _items(decision: Any) -> list[tuple[str, Any]]:
    if isinstance(decision, dict):
        return list(decision.items())
    return [(f.name, getattr(decision, f.name)) for f in dataclasses.fields(decision)]


def id_tag_info(decision: Any) -> dict[str, Any] | None:
    """The decided idTagInfo as a snake_case dict (what the core stores and sends)."""
    if decision is None:
        return None
    info = _get(decision, "id_tag_info")
    if info is None:
        return None
    return protocol.snake_case(protocol.to_payload(info))


def apply(hook: PluginHook, answer: Any, decision: Any, decided_by: str | None) -> Any:
    """The answer to send: the core's, with a decision's fields put over it."""
    if decision is None or hook.action in ID_TAG_INFO_ACTIONS:
        return answer  # the core already used the decided idTagInfo
    changes = {k: v for k, v in _items(decision) if v is not None}
    decided = dataclasses.replace(answer, **changes)
    try:
        protocol.validate(hook.action, protocol.to_payload(decided), response=True)
    except OCPPError as exc:
        logger.error(
            "decision of %s on %s ignored: not a valid answer (%s)",
            decided_by,
            hook.action,
            exc.description,
        )
        return answer
    return decided
