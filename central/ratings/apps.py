from django.apps import AppConfig
from django.db.models.signals import post_migrate


class RatingsConfig(AppConfig):
    name = "central.ratings"
    label = "ratings"
    verbose_name = "评价数据"

    def ready(self):
        from django.db.models.signals import post_delete, post_save, pre_save
        from . import content
        from .roles import ensure_roles
        post_migrate.connect(ensure_roles, sender=self)
        for model in content.CONTENT_MODELS:  # what a terminal pulls changed: its ETag must change too
            post_save.connect(content.changed, sender=model, dispatch_uid=f"content-{model.__name__}-saved")
            post_delete.connect(content.changed, sender=model, dispatch_uid=f"content-{model.__name__}-deleted")
        pre_save.connect(content.remember_hall, sender=content.Staff, dispatch_uid="content-staff-moving")
