from django.apps import AppConfig


class ReportersConfig(AppConfig):
    name = "apps.reporters"
    label = "reporters"
