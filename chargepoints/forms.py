"""Admin forms for the common CS->CP commands; each builds its OCPP 1.6 payload.

The admin imports these in every manage.py command (autodiscovery), so what only a
form's use needs -- the session layer's message lists, OCPP 1.6's timestamps -- is
imported when a form is built or cleaned.
"""

from __future__ import annotations

from cryptography import x509
from django import forms


class CommandForm(forms.Form):
    action: str
    label: str

    def payload(self) -> dict:
        """The OCPP payload: cleaned data in camelCase, empty fields left out."""
        return {
            _camel(name): value for name, value in self.cleaned_data.items() if value not in (None, "", [])
        }


def _triggerable_messages() -> list[tuple[str, str]]:
    from .session.commands import TRIGGERABLE_MESSAGES

    return [(m, m) for m in TRIGGERABLE_MESSAGES]


def _extended_triggerable_messages() -> list[tuple[str, str]]:
    from .session.commands import EXTENDED_TRIGGERABLE_MESSAGES

    return [(m, m) for m in EXTENDED_TRIGGERABLE_MESSAGES]


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class RemoteStartForm(CommandForm):
    action, label = "RemoteStartTransaction", "Remote start"
    id_tag = forms.CharField(label="ID tag", max_length=20)
    connector_id = forms.IntegerField(
        min_value=1, required=False, help_text="Empty: the charge point chooses."
    )


class RemoteStopForm(CommandForm):
    action, label = "RemoteStopTransaction", "Remote stop"
    transaction_id = forms.IntegerField()


class ResetForm(CommandForm):
    action, label = "Reset", "Reset"
    type = forms.ChoiceField(choices=[("Soft", "Soft"), ("Hard", "Hard")])


class UnlockForm(CommandForm):
    action, label = "UnlockConnector", "Unlock connector"
    connector_id = forms.IntegerField(min_value=1)


class ChangeAvailabilityForm(CommandForm):
    action, label = "ChangeAvailability", "Change availability"
    connector_id = forms.IntegerField(min_value=0, initial=0, help_text="0: the whole charge point.")
    type = forms.ChoiceField(choices=[("Operative", "Operative"), ("Inoperative", "Inoperative")])


class GetConfigurationForm(CommandForm):
    action, label = "GetConfiguration", "Get configuration"
    key = forms.CharField(label="Keys", required=False, help_text="Comma-separated; empty for all keys.")

    def clean_key(self) -> list[str]:
        return [k.strip() for k in self.cleaned_data["key"].split(",") if k.strip()]


class ChangeConfigurationForm(CommandForm):
    action, label = "ChangeConfiguration", "Change configuration"
    key = forms.CharField(max_length=50)
    value = forms.CharField(max_length=500)

    def payload(self) -> dict:
        return {"key": self.cleaned_data["key"], "value": self.cleaned_data["value"]}


class TriggerMessageForm(CommandForm):
    action, label = "TriggerMessage", "Trigger message"
    requested_message = forms.ChoiceField(choices=_triggerable_messages)
    connector_id = forms.IntegerField(min_value=0, required=False)


class ClearCacheForm(CommandForm):
    action, label = "ClearCache", "Clear cache"


# --- the security extension ----------------------------------------------------------

CERTIFICATE_TYPES = [
    ("CentralSystemRootCertificate", "Central System root certificate"),
    ("ManufacturerRootCertificate", "Manufacturer root certificate"),
]
HASH_ALGORITHMS = [("SHA256", "SHA256"), ("SHA384", "SHA384"), ("SHA512", "SHA512")]
PEM_WIDGET = forms.Textarea(attrs={"rows": 4, "cols": 40})


def _check_pem_certificates(text: str) -> str:
    try:
        x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise forms.ValidationError("Paste PEM certificate(s): -----BEGIN CERTIFICATE----- ...") from None
    return text.strip().replace("\r\n", "\n") + "\n"  # PEM as files hold it


def _timestamp(value) -> str | None:
    from .ocpp16 import protocol

    return protocol.format_timestamp(value) if value else None


class CertificateSignedForm(CommandForm):
    action, label = "CertificateSigned", "Certificate signed"
    certificate_chain = forms.CharField(
        max_length=10000,
        widget=PEM_WIDGET,
        help_text="PEM: the charge point's certificate, then its CA certificates.",
    )

    def clean_certificate_chain(self) -> str:
        return _check_pem_certificates(self.cleaned_data["certificate_chain"])


class InstallCertificateForm(CommandForm):
    action, label = "InstallCertificate", "Install certificate"
    certificate_type = forms.ChoiceField(choices=CERTIFICATE_TYPES)
    certificate = forms.CharField(max_length=5500, widget=PEM_WIDGET, help_text="PEM.")

    def clean_certificate(self) -> str:
        return _check_pem_certificates(self.cleaned_data["certificate"])


class GetInstalledCertificateIdsForm(CommandForm):
    action, label = "GetInstalledCertificateIds", "Get installed certificate ids"
    certificate_type = forms.ChoiceField(choices=CERTIFICATE_TYPES)


class DeleteCertificateForm(CommandForm):
    action, label = "DeleteCertificate", "Delete certificate"
    hash_algorithm = forms.ChoiceField(choices=HASH_ALGORITHMS)
    issuer_name_hash = forms.CharField(
        max_length=128, help_text="Hex, as GetInstalledCertificateIds reports it."
    )
    issuer_key_hash = forms.CharField(max_length=128)
    serial_number = forms.CharField(max_length=40)

    def payload(self) -> dict:
        return {"certificateHashData": super().payload()}


class ExtendedTriggerMessageForm(CommandForm):
    action, label = "ExtendedTriggerMessage", "Extended trigger message"
    requested_message = forms.ChoiceField(choices=_extended_triggerable_messages)
    connector_id = forms.IntegerField(min_value=0, required=False)


class GetLogForm(CommandForm):
    action, label = "GetLog", "Get log"
    log_type = forms.ChoiceField(
        choices=[("DiagnosticsLog", "Diagnostics log"), ("SecurityLog", "Security log")]
    )
    request_id = forms.IntegerField(min_value=0)
    remote_location = forms.CharField(max_length=512, help_text="Where the charge point uploads it.")
    oldest_timestamp = forms.DateTimeField(required=False)
    latest_timestamp = forms.DateTimeField(required=False)
    retries = forms.IntegerField(min_value=0, required=False)
    retry_interval = forms.IntegerField(min_value=0, required=False, help_text="Seconds.")

    def payload(self) -> dict:
        data = self.cleaned_data
        log = {
            "remoteLocation": data["remote_location"],
            "oldestTimestamp": _timestamp(data["oldest_timestamp"]),
            "latestTimestamp": _timestamp(data["latest_timestamp"]),
        }
        payload = {
            "logType": data["log_type"],
            "requestId": data["request_id"],
            "log": {k: v for k, v in log.items() if v is not None},
            "retries": data["retries"],
            "retryInterval": data["retry_interval"],
        }
        return {k: v for k, v in payload.items() if v is not None}


class SignedUpdateFirmwareForm(CommandForm):
    action, label = "SignedUpdateFirmware", "Signed update firmware"
    request_id = forms.IntegerField(min_value=0)
    location = forms.CharField(max_length=512, help_text="The firmware's URL.")
    retrieve_date_time = forms.DateTimeField()
    install_date_time = forms.DateTimeField(required=False)
    signing_certificate = forms.CharField(
        max_length=5500, widget=PEM_WIDGET, help_text="PEM: the certificate that signed the firmware."
    )
    signature = forms.CharField(max_length=800, help_text="Base64, of the firmware image.")
    retries = forms.IntegerField(min_value=0, required=False)
    retry_interval = forms.IntegerField(min_value=0, required=False, help_text="Seconds.")

    def clean_signing_certificate(self) -> str:
        return _check_pem_certificates(self.cleaned_data["signing_certificate"])

    def payload(self) -> dict:
        data = self.cleaned_data
        firmware = {
            "location": data["location"],
            "retrieveDateTime": _timestamp(data["retrieve_date_time"]),
            "installDateTime": _timestamp(data["install_date_time"]),
            "signingCertificate": data["signing_certificate"],
            "signature": data["signature"],
        }
        payload = {
            "requestId": data["request_id"],
            "firmware": {k: v for k, v in firmware.items() if v is not None},
            "retries": data["retries"],
            "retryInterval": data["retry_interval"],
        }
        return {k: v for k, v in payload.items() if v is not None}


#: The operations offered in the admin, by URL name.
OPERATIONS: dict[str, type[CommandForm]] = {
    "remote-start": RemoteStartForm,
    "remote-stop": RemoteStopForm,
    "reset": ResetForm,
    "unlock": UnlockForm,
    "change-availability": ChangeAvailabilityForm,
    "get-configuration": GetConfigurationForm,
    "change-configuration": ChangeConfigurationForm,
    "trigger-message": TriggerMessageForm,
    "clear-cache": ClearCacheForm,
    "certificate-signed": CertificateSignedForm,
    "install-certificate": InstallCertificateForm,
    "get-installed-certificate-ids": GetInstalledCertificateIdsForm,
    "delete-certificate": DeleteCertificateForm,
    "extended-trigger-message": ExtendedTriggerMessageForm,
    "get-log": GetLogForm,
    "signed-update-firmware": SignedUpdateFirmwareForm,
}
