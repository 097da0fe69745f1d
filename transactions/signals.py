"""The data layer's own signal: a transaction recorded, inside the write's database transaction.

``transaction_recorded(sender=Transaction, transaction, event, request)`` is sent
synchronously by ``transactions.services`` on the database thread, inside the
transaction that writes the row, so that a receiver may add rows of its own to that
same transaction (an outbox, say): they are committed together with the start or
stop, or rolled back with it.

- ``transaction``: the ``Transaction`` row as written (its ``pk`` is the OCPP
  transactionId).
- ``event``: ``"started"`` for a NEW transaction (never for a repeated
  StartTransaction), ``"stopped"`` for the first stop of a transaction (never for a
  repeated, late or unknown StopTransaction).
- ``request``: the ``TransactionStart`` or ``TransactionStop`` as received.

Errors are NOT isolated: a receiver's exception fails the write it observes (the
charge point is answered InternalError and retries). Receivers must be quick and
must not call the session layer. Nothing is sent when no receiver is connected.
"""

from django.dispatch import Signal

transaction_recorded = Signal()
