from django.contrib import admin
from django.urls import path

admin.site.site_header = "Levity Central System"
admin.site.site_title = "Levity"
admin.site.index_title = "Charging network"

urlpatterns = [
    path("admin/", admin.site.urls),
]
