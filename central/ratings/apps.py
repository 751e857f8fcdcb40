from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RatingsConfig(AppConfig):
    name = "central.ratings"
    label = "ratings"
    verbose_name = "评价数据"

    def ready(self):
        from .roles import ensure_roles
        post_migrate.connect(ensure_roles, sender=self)
