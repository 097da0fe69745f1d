"""Admin forms for the common CS->CP commands; each builds its OCPP 1.6 payload."""

from __future__ import annotations

from django import forms

from .session.commands import TRIGGERABLE_MESSAGES


class CommandForm(forms.Form):
    action: str
    label: str

    def payload(self) -> dict:
        """The OCPP payload: cleaned data in camelCase, empty fields left out."""
        return {
            _camel(name): value
            for name, value in self.cleaned_data.items()
            if value not in (None, "", [])
        }


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
    key = forms.CharField(
        label="Keys", required=False, help_text="Comma-separated; empty for all keys."
    )

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
    requested_message = forms.ChoiceField(choices=[(m, m) for m in TRIGGERABLE_MESSAGES])
    connector_id = forms.IntegerField(min_value=0, required=False)


class ClearCacheForm(CommandForm):
    action, label = "ClearCache", "Clear cache"


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
}
