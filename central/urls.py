from django.contrib import admin
from django.urls import path

from central.ratings.api import api
from central.ratings import views

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
]
