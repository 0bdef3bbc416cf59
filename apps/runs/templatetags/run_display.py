"""How run and step states read on the pages: a badge that says the state in words with a
symbol (colour is never the only signal), and durations in human units."""

from __future__ import annotations

from django import template

register = template.Library()

SYMBOLS = {
    "queued": "◷",
    "pending": "○",
    "running": "▶",
    "success": "✓",
    "warning": "!",
    "failed": "✗",
    "aborted": "■",
    "skipped": "↷",
    "sent": "✓",
    "sending": "▶",
    "fired": "✓",
    "unchanged": "=",
    "waiting": "◷",
    "suspended": "■",
    "error": "✗",
}


@register.inclusion_tag("runs/_status.html")
def status_badge(status: str | None, label: str = "") -> dict:
    status = status or "none"
    return {
        "status": status,
        "symbol": SYMBOLS.get(status, "·"),
        "label": label or ("No runs" if status == "none" else status.capitalize()),
    }


@register.filter
def duration(seconds: float | None) -> str:
    """12.3 → '12.3 s', 75 → '1 min 15 s', 3725 → '1 h 2 min'."""
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
