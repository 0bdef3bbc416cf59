import logging

from django.apps import AppConfig


class SystemConfig(AppConfig):
    name = "apps.system"
    label = "system"
    verbose_name = "System"

    def ready(self) -> None:
        # Wiring only: log fields for Celery tasks, the failed-login counter, the API's JSON
        # field. Celery calls django.setup() (so this) before it sets up logging in
        # `celery worker` and `beat`.
        from celery import signals as celery_signals
        from django.conf import settings
        from django.contrib.auth import signals as auth_signals
        from django.db import models
        from rest_framework.serializers import ModelSerializer

        from apps.system import log_format, parsers, throttling

        celery_signals.task_prerun.connect(log_format.task_context_bind, weak=False)
        celery_signals.task_postrun.connect(log_format.task_context_unbind, weak=False)
        if settings.CADENZA_LOG_FORMAT == "json":
            celery_signals.setup_logging.connect(log_format.celery_use_django_logging, weak=False)
            logging.captureWarnings(True)  # warnings become JSON lines too, not raw stderr
        auth_signals.user_login_failed.connect(throttling.login_failed, weak=False)
        auth_signals.user_logged_in.connect(throttling.login_succeeded, weak=False)
        # A model's JSON field is the API's too: one that refuses NUL characters.
        ModelSerializer.serializer_field_mapping[models.JSONField] = parsers.JSONField
