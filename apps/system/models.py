from django.db import models


class Heartbeat(models.Model):
    """The last time a named component proved it was alive (e.g. beat → broker → worker)."""

    name = models.CharField(max_length=50, primary_key=True)
    at = models.DateTimeField()
    host = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"
