from django.contrib import admin
from django.urls import path, register_converter

from central.ratings import link_tokens, metrics, mobile, plaques, sms, views
from central.ratings.api import api

register_converter(link_tokens.Converter, "link")

# Chinese first, English beneath, for citizens who meet them (errors.py); Django's own are English only
handler400 = "central.ratings.errors.bad_request"
handler403 = "central.ratings.errors.permission_denied"
handler404 = "central.ratings.errors.page_not_found"
handler500 = "central.ratings.errors.server_error"

admin.site.site_header = "政务服务好差评 · 管理后台"
admin.site.site_title = "好差评管理后台"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("stats/", views.statistics, name="statistics"),
    path("alerts/", views.alerts_page, name="alerts"),
    path("terminals/", views.terminals, name="terminals"),
    path("upward/", views.upward_page, name="upward"),
    path("metrics", metrics.view, name="metrics"),
    path("exports/<str:convention>.<str:fmt>", views.export, name="export"),
    path("public/", views.public, name="public"),
    path("r/<str:token>", mobile.page, name="mobile"),
    path("w/<link:code>", plaques.page, name="plaque"),
    path("s/<link:token>", sms.link_page, name="sms-link"),
    path("admin/password_change/", admin.site.admin_view(views.password_change)),  # old password throttled
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
]
