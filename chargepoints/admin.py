from django.contrib import admin

from .models import (
    ChargePoint,
    Connector,
    DataTransfer,
    DiagnosticsStatusNotification,
    FirmwareStatusNotification,
    StatusNotification,
)


class ConnectorInline(admin.TabularInline):
    model = Connector
    extra = 0
    readonly_fields = [f.name for f in Connector._meta.fields if f.name != "id"]
    can_delete = False


@admin.register(ChargePoint)
class ChargePointAdmin(admin.ModelAdmin):
    list_display = [
        "charge_point_id",
        "is_connected",
        "registration_status",
        "charge_point_vendor",
        "charge_point_model",
        "firmware_version",
        "last_seen_at",
    ]
    list_filter = ["is_connected", "registration_status", "charge_point_vendor"]
    search_fields = ["charge_point_id", "charge_point_serial_number", "charge_box_serial_number"]
    inlines = [ConnectorInline]


for model in (StatusNotification, DataTransfer, DiagnosticsStatusNotification, FirmwareStatusNotification):
    admin.site.register(model)
