"""One asynchronous Fluentd sender per destination, shared by every session.

fluent-logger's ``asyncsender.FluentSender`` queues each record and sends it from
its own thread, so emitting never waits for Fluentd. Here it also:

- drops the oldest records when its queue is full (``queue_circular``) instead of
  blocking the caller, and counts and logs every record dropped, whether from the
  queue or from the buffer of records kept while Fluentd is away (``bufmax``);
- retries what it buffered once a second while idle, so records kept during a
  Fluentd restart arrive without waiting for the next record;
- logs when Fluentd becomes unreachable and when it is reachable again.

Senders are shared per (host, port, tag_prefix): one thread and one TCP
connection per destination, not per charge point. They are flushed and closed at
process exit, within a bounded time.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from queue import Empty

import msgpack
from django.conf import settings
from fluent import asyncsender
from prometheus_client import Counter

logger = logging.getLogger(__name__)

#: How often the sender thread retries buffered records while no new record comes.
RETRY_SECONDS = 1.0
#: Drops are logged at once, then at most this often (with the count since).
DROP_LOG_SECONDS = 10.0
#: How long process exit may wait for the senders to flush.
CLOSE_SECONDS = 5.0

RECORDS_DROPPED = Counter(
    "levity_fluentd_records_dropped",
    "Audit records dropped because Fluentd was away or slow and the queue or buffer was full.",
    ["destination"],
)


def _count_records(packed: bytes) -> int:
    """How many forward-protocol messages a buffer of concatenated packets holds."""
    unpacker = msgpack.Unpacker(raw=True, strict_map_key=False)
    unpacker.feed(packed)
    return sum(1 for _ in unpacker)


class AuditSender(asyncsender.FluentSender):
    """fluent-logger's asynchronous sender, bounded, counting and logging what it drops."""

    pendings: bytes | None  # fluent-logger's buffer of records not yet sent

    def __init__(
        self,
        tag: str,
        *,
        host: str,
        port: int,
        timeout: float,
        queue_maxsize: int,
        bufmax: int,
    ) -> None:
        self.destination = f"{host}:{port}"
        self.dropped = 0
        self._drop_lock = threading.Lock()
        self._unlogged_drops = 0
        self._last_drop_log = 0.0
        self._reachable = True
        self._dropped_counter = RECORDS_DROPPED.labels(self.destination)
        super().__init__(
            tag,
            host=host,
            port=port,
            timeout=timeout,
            bufmax=bufmax,
            nanosecond_precision=True,
            # Anything msgpack cannot encode is sent as its str(), not replaced by an
            # error record.
            msgpack_kwargs={"default": str},
            queue_maxsize=queue_maxsize,
            queue_circular=True,
            queue_overflow_handler=self._queue_overflowed,
            buffer_overflow_handler=self._buffer_overflowed,
        )

    # --- what gets dropped ------------------------------------------------------

    def _queue_overflowed(self, discarded: bytes) -> None:
        self._record_drops(1, "the queue is full (Fluentd is slow or away)")

    def _buffer_overflowed(self, pendings: bytes) -> None:
        self._record_drops(
            _count_records(pendings), f"Fluentd is away and {len(pendings)} bytes are buffered"
        )

    def _record_drops(self, count: int, why: str) -> None:
        if count <= 0:
            return
        self._dropped_counter.inc(count)
        with self._drop_lock:
            self.dropped += count
            self._unlogged_drops += count
            if time.monotonic() - self._last_drop_log < DROP_LOG_SECONDS:
                return
            unlogged, self._unlogged_drops = self._unlogged_drops, 0
            self._last_drop_log = time.monotonic()
        logger.warning(
            "Fluentd %s: dropped %d audit records because %s (%d dropped in total)",
            self.destination,
            unlogged,
            why,
            self.dropped,
        )

    def _log_pending_drops(self) -> None:
        with self._drop_lock:
            unlogged, self._unlogged_drops = self._unlogged_drops, 0
            if unlogged:
                self._last_drop_log = time.monotonic()
        if unlogged:
            logger.warning(
                "Fluentd %s: dropped %d more audit records (%d dropped in total)",
                self.destination,
                unlogged,
                self.dropped,
            )

    # --- the sender thread ----------------------------------------------------------

    def _deliver(self, packed: bytes) -> None:
        try:
            delivered = self._send_internal(packed)
        except Exception:
            # Not a network error (those return False): keep the thread alive.
            logger.exception("Fluentd %s: sending failed", self.destination)
            self._record_drops(_count_records(packed), "sending them failed")
            return
        if delivered and not self._reachable:
            logger.info("Fluentd %s is reachable again; buffered records sent", self.destination)
        elif not delivered and self._reachable:
            logger.warning(
                "Fluentd %s is unreachable (%s); keeping up to %d bytes of records meanwhile",
                self.destination,
                self.last_error,
                self.bufmax,
            )
        self._reachable = delivered

    def _send_loop(self) -> None:
        # asyncsender's loop, plus: retry buffered records while idle, and log drops.
        try:
            while True:
                try:
                    packed = self._queue.get(timeout=RETRY_SECONDS)
                except Empty:
                    if self.pendings:
                        self._deliver(b"")
                    self._log_pending_drops()
                    continue
                if packed is asyncsender._TOMBSTONE:
                    break
                self._deliver(packed)
        finally:
            self._close()

    def close(self, flush: bool = True) -> None:
        """Send what is queued, try once more what is buffered, count the rest as dropped."""
        super().close(flush=flush)
        if self.pendings:
            try:
                self._send_data(self.pendings)
            except OSError:
                self._record_drops(_count_records(self.pendings), "Fluentd is away at exit")
            finally:
                self.pendings = None
                self._close()
        self._log_pending_drops()


_senders: dict[tuple[str, int, str], AuditSender] = {}
_senders_lock = threading.Lock()


def get_sender(host: str, port: int, tag_prefix: str, timeout: float | None = None) -> AuditSender:
    """The process's sender for this destination; ``timeout`` given updates it."""
    key = (host, int(port), tag_prefix)
    with _senders_lock:
        sender = _senders.get(key)
        if sender is None:
            if not _senders:
                atexit.register(close_all)
            sender = _senders[key] = AuditSender(
                tag_prefix,
                host=host,
                port=int(port),
                timeout=3.0 if timeout is None else timeout,
                queue_maxsize=settings.LEVITY_FLUENTD_QUEUE_SIZE,
                bufmax=settings.LEVITY_FLUENTD_BUFFER_BYTES,
            )
        elif timeout is not None:
            sender.timeout = timeout
        return sender


def close_all(timeout: float = CLOSE_SECONDS) -> None:
    """Flush and close every sender, waiting at most ``timeout`` seconds in all."""
    with _senders_lock:
        senders = list(_senders.values())
        _senders.clear()
    if not senders:
        return
    closers = [
        threading.Thread(target=_close_quietly, args=(s,), name=f"close Fluentd {s.destination}")
        for s in senders
    ]
    deadline = time.monotonic() + timeout
    for thread in closers:
        thread.daemon = True
        thread.start()
    for thread, sender in zip(closers, senders, strict=True):
        thread.join(max(deadline - time.monotonic(), 0))
        if thread.is_alive():
            logger.warning(
                "Fluentd %s: still sending after %.0fs at exit; %d queued records may be lost",
                sender.destination,
                timeout,
                sender._queue.qsize(),
            )


def _close_quietly(sender: AuditSender) -> None:
    try:
        sender.close()
    except Exception:
        logger.exception("Closing the Fluentd sender for %s failed", sender.destination)
