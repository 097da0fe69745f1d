"""The hook signals: Levity's public hook API for any Django app (docs/plugins.md).

There is one ``django.dispatch.Signal`` per ``PluginHook``, named after the hook
(``before_authorize`` for ``PluginHook.BEFORE_AUTHORIZE``...), and a few more for a
session's life and for instrumentation. Each is documented below, where it is
declared.

Every hook signal is sent with:

- ``sender``: the session's class (``LevityChargePoint``), as Django's model
  signals send the model class;
- ``charge_point``: the ``LevityChargePoint`` session (``.id`` is the charge point
  id; ``.call()`` sends it a command; ``.tx_repo`` etc. reach the database);
- ``context``: the ``PluginContext`` of this message: ``message_data`` is the
  request payload in snake_case, ``result`` the call_result object that was sent
  back (AFTER hooks only), ``decision``/``decided_by`` a BEFORE hook's decision;
- ``hook``: the ``PluginHook``.

The session sends them with ``asend_robust``: an exception in one receiver is logged
(logger ``django.dispatch``) and never reaches the other receivers, the OCPP answer
or the session. A BEFORE signal is awaited before the core handler runs; a receiver
may decide the answer with ``context.respond(...)``. An AFTER signal is sent once the
answer is on the wire, in a task of the session. Both are bounded in time
(LEVITY_BEFORE_HOOK_TIMEOUT, LEVITY_PLUGIN_HOOK_TIMEOUT). The session's own
``ChargePointPlugin`` instances run through these same signals, from one receiver
connected by the plugins app (``plugins.dispatch.run_session_plugins``), in their
configured order; other receivers run concurrently with it.

Threads: signals are sent on the event loop of the server process. Write receivers
as coroutine functions (``async def``): they run on that loop. Django runs a
synchronous receiver through ``sync_to_async``, in the one thread that also does the
sessions' database work, so it holds up every session's writes while it runs, and
its time bound cannot stop it. ``message_handled`` is the exception: it is sent
synchronously, on the loop (see there).
"""

from django.dispatch import Signal

from .base import PluginHook

before_boot_notification = Signal()
"""BootNotification received, before the charge point's identity is stored.

``message_data``: ``charge_point_vendor``, ``charge_point_model`` and the optional
fields of the request. A receiver may decide ``status``/``interval``.
"""

after_boot_notification = Signal()
"""BootNotification answered; ``context.result`` is ``call_result.BootNotification``."""

before_status_notification = Signal()
"""StatusNotification received, before the connector's status is stored.

``message_data``: ``connector_id``, ``error_code``, ``status`` and the optional fields.
"""

after_status_notification = Signal()
"""StatusNotification answered (the status is stored); ``context.result`` is
``call_result.StatusNotification``."""

before_start_transaction = Signal()
"""StartTransaction received, before the transaction is created.

``message_data``: ``connector_id``, ``id_tag``, ``meter_start``, ``timestamp``,
optional ``reservation_id``. A receiver may decide the ``id_tag_info``; the
transaction is created all the same.
"""

after_start_transaction = Signal()
"""StartTransaction answered; ``context.result`` is ``call_result.StartTransaction``
(``transaction_id``, ``id_tag_info``)."""

before_stop_transaction = Signal()
"""StopTransaction received, before the transaction is closed.

``message_data``: ``transaction_id``, ``meter_stop``, ``timestamp``, optional
``id_tag``, ``reason``, ``transaction_data``. A receiver may decide the ``id_tag_info``.
"""

after_stop_transaction = Signal()
"""StopTransaction answered; ``context.result`` is ``call_result.StopTransaction``.

Also ``context.stop_outcome`` (``"stopped"``, ``"unknown"``, ``"already_stopped"``,
``"repeated"``) and ``context.transaction`` (the ``Transaction`` row, or None).
"""

before_heartbeat = Signal()
"""Heartbeat received (``message_data`` is ``{}``)."""

after_heartbeat = Signal()
"""Heartbeat answered; ``context.result`` is ``call_result.Heartbeat``."""

before_meter_values = Signal()
"""MeterValues received, before the values are stored.

``message_data``: ``connector_id``, ``meter_value`` (list of ``{timestamp,
sampled_value}``), optional ``transaction_id``.
"""

after_meter_values = Signal()
"""MeterValues answered (the values are stored); ``context.result`` is
``call_result.MeterValues``."""

before_authorize = Signal()
"""Authorize received, before the ID tag is looked up (``message_data``: ``id_tag``).

A receiver may decide the ``id_tag_info``, in place of the lookup.
"""

after_authorize = Signal()
"""Authorize answered; ``context.result`` is ``call_result.Authorize`` (``id_tag_info``)."""

before_security_event_notification = Signal()
"""SecurityEventNotification (security extension) received, before the event is stored.

``message_data``: ``type``, ``timestamp`` (as sent) and, if sent, ``tech_info``.
"""

after_security_event_notification = Signal()
"""SecurityEventNotification answered; the event is stored
(chargepoints.models.SecurityEvent) once: ``context.repeated`` is True for an event
the charge point resent after a lost answer."""

#: The signal of each hook.
HOOK_SIGNALS: dict[PluginHook, Signal] = {hook: globals()[hook.value] for hook in PluginHook}

charge_point_connected = Signal()
"""A session has started: sent with ``charge_point``, once every one of its plugins'
``initialize()`` has returned (and so after the connection was accepted and the
session registered).

Sent with ``asend_robust`` from the session's start-up task, before the session
handles any message of the charge point: a receiver may call the charge point, and
its messages wait until the receivers have returned. ``sender`` is the session class.
"""

charge_point_disconnected = Signal()
"""A session has ended: sent with ``charge_point`` and ``close_code`` (the WebSocket
close code, or None), after its plugins' ``cleanup()`` and after the charge point was
recorded offline (unless a newer session of it is open).

Sent with ``asend_robust``; the connection is gone, so ``charge_point.call()`` raises
``ChargePointDisconnected``. ``sender`` is the session class.
"""

data_transfer_received = Signal()
"""A DataTransfer from a charge point: sent with ``charge_point``, ``vendor_id``,
``message_id`` and ``data`` (both may be None).

A receiver that handles the vendor returns ``{"status": "Accepted" | "Rejected" |
"UnknownMessageId", "data": "..."}``, otherwise None. The first valid answer is sent;
with none (or none within LEVITY_BEFORE_HOOK_TIMEOUT) the charge point gets
``UnknownVendorId``. Sent with ``asend_robust``; ``sender`` is the session class.
"""

message_handled = Signal()
"""A CALL from a charge point has been answered (CALLRESULT or CALLERROR on the wire).

Sent with ``charge_point``, ``action`` (the action name as the charge point sent it,
unchecked), ``duration`` (seconds from taking the CALL up to the answer being sent,
BEFORE hooks included, AFTER hooks not) and ``error_code`` (the CALLERROR code sent,
or None). A frame that could not be read as a message is reported too, with
``action`` and ``duration`` None. ``sender`` is the ``LevityChargePoint`` class.

It is sent with ``send_robust`` on the event loop, and only when it has receivers:
receivers must be synchronous and fast (count, don't do I/O).
"""

connection_refused = Signal()
"""A charge point's connection was refused before any session existed.

Sent with ``charge_point_id`` (the id it asked for; "" when refused before its
request was read: TLS), ``address`` (the client's), ``kind`` -- ``authentication``
(HTTP 401: wrong or missing password, a certificate that does not name it),
``policy`` (HTTP 403: TLS required, unknown id refused), ``invalid`` (no ``ocpp1.6``
subprotocol, an id that is not valid), ``throttled`` (too many failed handshakes or
connections from its address) or ``tls`` (a failed TLS handshake) -- and ``reason``
(the text that is logged). ``sender`` is None.

Sent with ``send_robust`` on the event loop, and only when it has receivers:
receivers must be synchronous and fast (count, don't do I/O).
"""

server_started = Signal()
"""Sent once per server process by ``levity_site/asgi.py`` when the ASGI application
has been built, i.e. in daphne (or another ASGI server), never in ``manage.py``
commands. For receivers that start process-wide services, such as a metrics port.
``sender`` is the ASGI application.
"""
