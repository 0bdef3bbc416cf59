from __future__ import annotations

from django.db import models


class DemoSeed(models.Model):
    """One row per demo object ever seeded (``dataset:orders``, ``trigger:…``).

    Re-seeding skips what is listed here, so an object the user deleted or renamed stays
    gone instead of coming back on the next `make run`; a new demo object (a later
    version of the demo) is still added.
    """

    key = models.CharField(max_length=200, primary_key=True)
    seeded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seeded_at", "key"]

    def __str__(self) -> str:
        return self.key
