"""The charge-point-initiated messages of the OCPP 1.6 security extension.

``SecurityExtensionHandlers`` is a mixin of the 1.6 session class (LevityChargePoint):
its ``@on`` handlers are collected through the MRO like the session's own, and use
the session's public face (``id``, ``_process`` for hooked messages, ``_db`` for the
one write path). The messages are those of the OCPP 1.6 security whitepaper as the
`ocpp` package defines them:

- SecurityEventNotification: stored, logged, and sent to the
  ``before/after_security_event_notification`` hooks;
- SignedFirmwareStatusNotification, LogStatusNotification: stored;
- SignCertificate: the CSR is checked (chargepoints.certificates) and the request
  stored before it is answered Accepted or Rejected; an accepted one is then
  signed by the configured CA and sent back in a CertificateSigned command,
  through the command service, so that the call is stored like any other command.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from django.conf import settings
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from plugins.base import PluginContext, PluginHook

from .. import certificates, services
from ..models import CertificateRequestOutcome, CommandStatus
from ..session import writer
from ..timestamps import parse_timestamp

if TYPE_CHECKING:
    # The class this mixes into, whose public face the handlers use.
    from ..session.base import Session as _SessionBase
else:
    _SessionBase = object

logger = logging.getLogger(__name__)


def _now() -> datetime:
    return datetime.now(timezone.utc)


#: Who a CertificateSigned sent after a SignCertificate is stored as requested by.
CERTIFICATE_SIGNED_BY = "levity:SignCertificate"


class SecurityExtensionHandlers(_SessionBase):
    """Handlers of the security extension's CP->CS messages, for the 1.6 session class."""

    #: The certificate being signed and sent for this session's charge point, if any:
    #: one at a time, so that a charge point repeating SignCertificate cannot pile up
    #: signatures and CertificateSigned calls.
    _certificate_in_progress: asyncio.Task | None = None

    @on(Action.security_event_notification)
    async def on_security_event_notification(
        self, type: str, timestamp: str, **kwargs: Any
    ) -> call_result.SecurityEventNotification:
        data = {"type": type, "timestamp": timestamp, **kwargs}
        return await self._process(
            PluginHook.BEFORE_SECURITY_EVENT_NOTIFICATION,
            PluginHook.AFTER_SECURITY_EVENT_NOTIFICATION,
            data,
            self._security_event_notification,
        )

    async def _security_event_notification(
        self, data: dict, context: PluginContext
    ) -> call_result.SecurityEventNotification:
        occurred_at = parse_timestamp(data["timestamp"])
        tech_info = data.get("tech_info") or ""
        stored = await self._db(
            services.record_security_event,
            type=data["type"],
            timestamp=occurred_at,
            tech_info=tech_info,
            received_at=_now(),
        )
        # For AFTER_SECURITY_EVENT_NOTIFICATION receivers: True when the charge point
        # resent an event already stored (its answer was lost).
        context.repeated = not stored  # type: ignore[attr-defined]  # this hook's own attribute (plugins/signals.py)
        if stored:
            logger.warning(
                "%s: security event %s at %s%s",
                self.id,
                data["type"],
                data["timestamp"],
                f": {tech_info}" if tech_info else "",
            )
        return call_result.SecurityEventNotification()

    @on(Action.signed_firmware_status_notification)
    async def on_signed_firmware_status_notification(
        self, status: str, request_id: int | None = None, **kwargs: Any
    ) -> call_result.SignedFirmwareStatusNotification:
        await self._db(
            services.record_signed_firmware_status,
            status,
            request_id,
            _now(),
        )
        return call_result.SignedFirmwareStatusNotification()

    @on(Action.log_status_notification)
    async def on_log_status_notification(
        self, status: str, request_id: int | None = None, **kwargs: Any
    ) -> call_result.LogStatusNotification:
        await self._db(services.record_log_status, status, request_id, _now())
        return call_result.LogStatusNotification()

    @on(Action.sign_certificate)
    async def on_sign_certificate(self, csr: str, **kwargs: Any) -> call_result.SignCertificate:
        received_at = _now()
        authority = certificates.configured_authority()
        try:
            if authority is None:
                raise certificates.CSRRejected(
                    "no CA is configured to sign charge point certificates "
                    "(LEVITY_CSMS_CA_CERT_FILE, LEVITY_CSMS_CA_KEY_FILE)"
                )
            in_progress = self._certificate_in_progress
            if in_progress is not None and not in_progress.done():
                raise certificates.CSRRejected(
                    "a certificate for an earlier SignCertificate is still being signed and sent"
                )
            request = certificates.check_csr(csr, self.id)
        except certificates.CSRRejected as exc:
            logger.warning("%s: SignCertificate rejected: %s", self.id, exc)
            await self._db(
                services.record_certificate_request,
                csr=csr,
                accepted=False,
                reason=str(exc),
                received_at=received_at,
            )
            return call_result.SignCertificate(status="Rejected")
        request_pk = await self._db(
            services.record_certificate_request,
            csr=csr,
            accepted=True,
            reason="",
            received_at=received_at,
        )
        # The session sends this handler's answer as soon as it returns, before the
        # task first runs: CertificateSigned always follows SignCertificate.conf.
        task = asyncio.create_task(self._deliver_certificate(authority, request, request_pk))
        self._certificate_in_progress = task
        _issuing.add(task)
        task.add_done_callback(_issuing.discard)
        return call_result.SignCertificate(status="Accepted")

    async def _deliver_certificate(
        self,
        authority: certificates.CertificateAuthority,
        request: Any,
        request_pk: int,
    ) -> None:
        try:
            await self._issue_certificate(authority, request, request_pk)
        except Exception:
            # The database failed (each step's outcome is stored as it happens).
            logger.exception("%s: certificate request %s not completed", self.id, request_pk)

    async def _issue_certificate(
        self,
        authority: certificates.CertificateAuthority,
        request: Any,
        request_pk: int,
    ) -> None:
        """Sign an accepted CSR and send the chain in CertificateSigned; store each step."""
        from ..session import (
            commands,
        )  # it imports the session class, which imports this

        try:
            certificate = await asyncio.to_thread(
                authority.issue,
                request,
                validity_days=settings.LEVITY_CSMS_CERT_VALIDITY_DAYS,
            )
        except Exception as exc:
            logger.exception("%s: signing the CSR failed", self.id)
            await self._certificate_outcome(
                request_pk, CertificateRequestOutcome.FAILED, f"signing failed: {exc}"
            )
            return
        chain = authority.certificate_chain(certificate)
        await self._db(
            services.record_certificate_issued,
            request_pk,
            certificate=certificates.pem(certificate),
            serial_number=certificates.serial_hex(certificate),
            not_after=certificate.not_valid_after_utc,
        )
        logger.info(
            "%s: certificate %s issued, valid until %s",
            self.id,
            certificates.serial_hex(certificate),
            certificate.not_valid_after_utc,
        )
        try:
            command = await commands.send_command(
                self.id,
                "CertificateSigned",
                {"certificateChain": chain},
                requested_by=CERTIFICATE_SIGNED_BY,
            )
        except commands.CommandError as exc:
            await self._certificate_outcome(
                request_pk,
                CertificateRequestOutcome.FAILED,
                f"CertificateSigned not sent: {exc}",
            )
            return
        if command.status == CommandStatus.ACCEPTED:
            outcome, reason = CertificateRequestOutcome.INSTALLED, ""
        elif command.status == CommandStatus.REJECTED:
            outcome, reason = (
                CertificateRequestOutcome.REFUSED,
                "the charge point answered Rejected",
            )
        else:
            outcome = CertificateRequestOutcome.FAILED
            reason = f"CertificateSigned {command.status}: {command.error_code or command.error_description}"
        await self._certificate_outcome(request_pk, outcome, reason, command.pk)

    async def _certificate_outcome(
        self, request_pk: int, outcome: str, reason: str, command_pk: int | None = None
    ) -> None:
        # Not bound to the session: the outcome is recorded after the charge point left too.
        await writer.run(
            services.record_certificate_outcome,
            self.charge_point_pk,
            request_pk,
            outcome=outcome,
            reason=reason,
            command_pk=command_pk,
            completed_at=_now(),
        )


#: Certificates being signed and sent (a reference, so that the tasks are not
#: collected). Each ends by itself: a charge point that goes away makes its
#: CertificateSigned end "offline", and the request "failed".
_issuing: set[asyncio.Task] = set()
