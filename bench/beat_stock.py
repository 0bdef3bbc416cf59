"""A bare Celery app for stock django-celery-beat: `celery -A bench.beat_stock beat -S
django_celery_beat.schedulers:DatabaseScheduler`. Django is set up for the scheduler's
models; none of Cadenza's periodic tasks are declared, so beat has only the benchmark's
PeriodicTask rows (bench/beat.py disables every other row before it starts).
"""

from __future__ import annotations

import os

import django
from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

app = Celery("stock", broker=os.environ["REDIS_URL"])
app.conf.update(
    timezone="UTC",
    enable_utc=True,
    beat_scheduler="django_celery_beat.schedulers:DatabaseScheduler",
    broker_connection_retry_on_startup=True,
)
