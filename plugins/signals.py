"""The hook signals: Levity's public hook API for any Django app.

There is one ``django.dispatch.Signal`` per ``PluginHook``, named after the hook
(``before_authorize`` for ``PluginHook.BEFORE_AUTHORIZE``...). The OCPP session
sends each with ``asend_robust``: an exception in one receiver is logged (logger
``django.dispatch``) and never reaches the other receivers, the OCPP answer, or
the session. Async receivers run concurrently; sync ones run in a thread.

Every hook signal is sent with:

- ``sender``: the session's class (``LevityChargePoint``), as Django's model
  signals send the model class;
- ``charge_point``: the ``LevityChargePoint`` session (``.id`` is the charge point
  id; ``.call()`` sends it a command; ``.tx_repo`` etc. reach the database);
- ``context``: the ``PluginContext`` of this message: ``message_data`` is the
  request payload in snake_case, ``result`` the call_result object that was sent
  back (AFTER hooks only), ``decision``/``decided_by`` a BEFORE hook's decision;
- ``hook``: the ``PluginHook``.

BEFORE signals are awaited before the core handler runs, bounded in time by
LEVITY_BEFORE_HOOK_TIMEOUT (per plugin); a receiver may decide the answer with
``context.respond(...)`` (docs/plugins.md, "Deciding the answer"). AFTER signals
are sent once the answer is on the wire, in a task tracked by the session, bounded
by LEVITY_PLUGIN_HOOK_TIMEOUT. The session's own ``ChargePointPlugin`` instances
run through the same signals, from one receiver connected by the plugins app
(``plugins.dispatch.run_session_plugins``), in their configured order.

``charge_point_connected`` is sent once the session's plugins are initialized,
from the session's own task (so a receiver may call the charge point);
``charge_point_disconnected`` once they are cleaned up. ``data_transfer_received``
is described below.

Besides the sixteen message hooks:

- ``charge_point_connected(sender, charge_point)``: after the session is registered.
- ``charge_point_disconnected(sender, charge_point, close_code)``: after it ended.
- ``message_handled``, ``server_started``: instrumentation, see below.
"""

from django.dispatch import Signal

from .base import PluginHook

before_boot_notification = Signal()
after_boot_notification = Signal()
before_status_notification = Signal()
after_status_notification = Signal()
before_start_transaction = Signal()
after_start_transaction = Signal()
before_stop_transaction = Signal()
after_stop_transaction = Signal()
before_heartbeat = Signal()
after_heartbeat = Signal()
before_meter_values = Signal()
after_meter_values = Signal()
before_authorize = Signal()
after_authorize = Signal()
#: SecurityEventNotification (security extension): ``context.message_data`` has
#: ``type``, ``timestamp`` (as sent) and, if sent, ``tech_info``; the event is stored
#: (chargepoints.models.SecurityEvent) before the AFTER signal is sent, once:
#: ``context.repeated`` is True for an event the charge point resent.
before_security_event_notification = Signal()
after_security_event_notification = Signal()

charge_point_connected = Signal()
charge_point_disconnected = Signal()

#: The signal of each hook.
HOOK_SIGNALS: dict[PluginHook, Signal] = {hook: globals()[hook.value] for hook in PluginHook}

#: Sent for each DataTransfer from a charge point, with ``charge_point``, ``vendor_id``,
#: ``message_id`` and ``data``. A receiver that handles the vendor returns
#: ``{"status": "Accepted"|"Rejected"|"UnknownMessageId", "data": "..."}``; the first
#: such answer is sent. With no answer the charge point gets ``UnknownVendorId``.
data_transfer_received = Signal()

#: Sent after each CALL from a charge point has been answered (CALLRESULT or
#: CALLERROR on the wire), with ``charge_point``, ``action`` (the action name as the
#: charge point sent it, unchecked), ``duration`` (seconds from taking the CALL up to
#: the answer being sent, BEFORE hooks included, AFTER hooks not) and ``error_code``
#: (the CALLERROR code sent, or None). A frame that could not be read as a message
#: is reported too, with ``action`` and ``duration`` None. ``sender`` is the
#: ``LevityChargePoint`` class.
#: It is sent with ``send_robust`` on the event loop, and only when it has receivers:
#: receivers must be synchronous and fast (count, don't do I/O).
message_handled = Signal()

#: Sent once per server process by ``levity_site/asgi.py`` when the ASGI application
#: has been built, i.e. in daphne (or another ASGI server), never in ``manage.py``
#: commands. For receivers that start process-wide services, such as a metrics port.
#: ``sender`` is the ASGI application.
server_started = Signal()
