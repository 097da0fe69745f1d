from django.contrib import admin

from .models import IdTag, MeterValue, Transaction


@admin.register(IdTag)
class IdTagAdmin(admin.ModelAdmin):
    list_display = ["id_tag", "status", "expiry_date", "parent_id_tag"]
    list_filter = ["status"]
    search_fields = ["id_tag", "parent_id_tag", "note"]


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = ["id", "charge_point", "connector_id", "id_tag", "start_timestamp", "stop_timestamp", "energy_wh"]
    list_filter = ["stop_reason"]
    search_fields = ["id_tag", "charge_point__charge_point_id"]


admin.site.register(MeterValue)
