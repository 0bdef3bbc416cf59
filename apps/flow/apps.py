from django.apps import AppConfig


class FlowConfig(AppConfig):
    name = "apps.flow"
    label = "flow"
