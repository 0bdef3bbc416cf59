"""Rate limits: DRF throttles for the API, and a lock on log-in after repeated failures.

Both count in Django's cache, which is Redis in distributed mode: every web process shares
the counts, so N processes do not multiply the limits.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS, cache, caches
from django.core.cache.backends.redis import RedisCache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from rest_framework.settings import api_settings
from rest_framework.throttling import (
    AnonRateThrottle,
    BaseThrottle,
    SimpleRateThrottle,
    UserRateThrottle,
)

log = logging.getLogger(__name__)


# One round trip, atomic: Django's RedisCache would take three (add, then incr's exists + incr).
_REDIS_COUNT = (
    "local n = redis.call('INCR', KEYS[1]) "
    "if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end return n"
)


def _count(store, key: str, *, timeout: int) -> int:
    """Add one to a counter that expires `timeout` seconds after its first count."""
    backend = caches[DEFAULT_CACHE_ALIAS] if store is cache else store  # not the proxy
    if isinstance(backend, RedisCache):
        # The value is the plain integer the cache's own incr keeps, under the cache's key.
        full_key = backend.make_and_validate_key(key)
        client = backend._cache.get_client(full_key, write=True)
        return int(client.register_script(_REDIS_COUNT)(keys=[full_key], args=[timeout]))
    store.add(key, 0, timeout=timeout)
    try:
        return store.incr(key)
    except ValueError:  # expired between add and incr: this count starts a new one
        store.set(key, 1, timeout=timeout)
        return 1


class _FixedWindowThrottle(SimpleRateThrottle):
    """A counter per client and window (e.g. per minute): two O(1) cache calls a request.

    DRF's own throttles keep the timestamp of every request in the window, unpickled and
    pickled again on each request: 3000 floats a request at the default user rate. A fixed
    window lets a client burst to twice the rate across a window's edge; for a limit that
    stops runaway scripts, that is the right trade.
    """

    scope: str

    def get_rate(self) -> str | None:
        # DRF binds THROTTLE_RATES at import; read them per request, so that a changed
        # setting (and a test's override) takes effect.
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        window = int(self.timer() // self.duration)
        self.window_ends = (window + 1) * self.duration
        try:
            count = _count(self.cache, f"{ident}:{window}", timeout=self.duration + 1)
        except Exception:  # fail open: a cache outage must not take the API down with it
            log.warning("API throttle: the cache is unavailable; not counting", exc_info=True)
            return True
        return count <= self.num_requests

    def wait(self) -> float:
        return max(1.0, self.window_ends - self.timer())


class ApiAnonThrottle(_FixedWindowThrottle, AnonRateThrottle):
    """Unauthenticated API requests, per client address (CADENZA_API_ANON_RATE)."""


class ApiUserThrottle(_FixedWindowThrottle, UserRateThrottle):
    """Authenticated API requests, per user (CADENZA_API_USER_RATE)."""


# --- Log-in lock ---------------------------------------------------------------------------


def client_ip(request: HttpRequest) -> str:
    """The address DRF's throttles see (REMOTE_ADDR, or X-Forwarded-For behind
    REST_FRAMEWORK["NUM_PROXIES"] proxies), so both limits agree on who the client is."""
    return BaseThrottle().get_ident(request)


def _key(kind: str, username: str, ip: str) -> str:
    # Hashed: usernames are user input, and cache keys have a restricted alphabet.
    digest = hashlib.sha256(f"{username.casefold()}\0{ip}".encode()).hexdigest()[:32]
    return f"login-{kind}:{digest}"


def login_locked_until(username: str, ip: str) -> float | None:
    """The time (epoch seconds) the lock on this username from this address ends, if any."""
    try:
        until = cache.get(_key("lock", username, ip))
    except Exception:  # fail open, as the API throttles: the password is still checked
        log.warning("log-in lock: the cache is unavailable; not checking", exc_info=True)
        return None
    return until if until and until > time.time() else None


def login_failed(sender, credentials: dict, request: HttpRequest | None = None, **_) -> None:
    """user_login_failed receiver: count failures; at the limit, lock for the window."""
    if request is None:
        return
    username, ip = str(credentials.get("username", "")), client_ip(request)
    window = settings.CADENZA_LOGIN_LOCKOUT_SECONDS
    failures_key = _key("failures", username, ip)
    try:  # the window starts at the first failure
        failures = _count(cache, failures_key, timeout=window)
        if failures >= settings.CADENZA_LOGIN_MAX_FAILURES:
            cache.set(_key("lock", username, ip), time.time() + window, timeout=window)
            cache.delete(failures_key)
    except Exception:
        log.warning("log-in lock: the cache is unavailable; not counting", exc_info=True)


def login_succeeded(sender, request: HttpRequest | None = None, user=None, **_) -> None:
    """user_logged_in receiver: a success forgets the earlier failures."""
    if request is not None and user is not None:
        try:
            cache.delete(_key("failures", user.get_username(), client_ip(request)))
        except Exception:
            log.warning("log-in lock: the cache is unavailable", exc_info=True)


class LoginThrottleMiddleware:
    """Refuses a log-in POST (pages and admin) while its username+address is locked, before
    the password is even checked: the right password does not open a locked account."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response
        self._paths: set[str] | None = None

    def _login_paths(self) -> set[str]:
        if self._paths is None:
            self._paths = {reverse("login"), reverse("admin:login")}
        return self._paths

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method == "POST" and request.path in self._login_paths():
            username = request.POST.get("username", "")
            until = login_locked_until(username, client_ip(request))
            if until is not None:
                return _locked_response(request, username, until)
        return self.get_response(request)


def _locked_response(request: HttpRequest, username: str, until: float) -> HttpResponse:
    wait = max(1, int(until - time.time() + 0.999))
    response = render(
        request,
        "system/login_locked.html",
        {"username": username, "wait_seconds": wait, "wait_minutes": (wait + 59) // 60},
        status=429,
    )
    response["Retry-After"] = str(wait)
    return response
