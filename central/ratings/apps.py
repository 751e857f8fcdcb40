from django.apps import AppConfig


class RatingsConfig(AppConfig):
    name = "central.ratings"
    label = "ratings"
    verbose_name = "评价数据"
