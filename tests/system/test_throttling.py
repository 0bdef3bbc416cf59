"""API throttles and the log-in lock, counted in the Redis cache every web process shares."""

from __future__ import annotations

import re
import time
import uuid

import pytest
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client

from apps.system.throttling import login_locked_until
from config.env import env_rate
from devstack import free_port
from tests.conftest import PASSWORD, make_user

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]
# Rates per day in these tests: the fixed window's edge (midnight UTC) is unlikely mid-test.
DAY = 86400


def _fresh_address() -> str:
    """An address of this test alone: throttle counts outlive a test in Redis."""
    number = uuid.uuid4().int
    return f"10.{number % 250}.{(number >> 8) % 250}.{(number >> 16) % 250 + 1}"


def _forget(ident: str, duration: int = DAY) -> None:
    """Delete a client's counters (one per window) around now."""
    window = int(time.time() // duration)
    cache.delete_many([f"{ident}:{n}" for n in range(window - 2, window + 2)])


@pytest.fixture
def address():
    ip = _fresh_address()
    yield ip
    _forget(f"throttle_anon_{ip}")


@pytest.fixture
def rates(settings):
    def set_rates(anon: str, user: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"anon": anon, "user": user},
        }

    return set_rates


def test_the_cache_is_redis_in_distributed_mode(settings):
    assert settings.MODE == "distributed"
    assert settings.CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"


def test_the_user_rate_answers_429_past_the_limit(rates):
    rates(anon="100/day", user="3/day")
    user = make_user(f"busy-{uuid.uuid4().hex[:8]}")
    client = Client()
    client.force_login(user)
    try:
        statuses = [client.get("/api/v1/me/").status_code for _ in range(3)]
        throttled = client.get("/api/v1/me/")
    finally:
        _forget(f"throttle_user_{user.pk}")
    assert statuses == [200, 200, 200]
    assert throttled.status_code == 429
    detail = throttled.json()["detail"]
    assert re.fullmatch(r"Request was throttled\. Expected available in \d+ seconds?\.", detail)
    assert 0 < int(throttled["Retry-After"]) <= DAY


def test_a_count_is_one_redis_round_trip_and_expires(monkeypatch):
    """A throttle's count is one atomic script call: the first count sets the expiry, the
    value is the plain integer the cache reads back."""
    from redis import Redis

    from apps.system.throttling import _count

    key = f"count-test-{uuid.uuid4().hex}"
    assert _count(cache, key, timeout=30) == 1  # loads the script into Redis if needed
    commands, original = [], Redis.execute_command

    def counted(self, *args, **options):
        commands.append(args[0])
        return original(self, *args, **options)

    monkeypatch.setattr(Redis, "execute_command", counted)
    assert [_count(cache, key, timeout=30) for _ in range(2)] == [2, 3]
    monkeypatch.undo()
    assert commands == ["EVALSHA", "EVALSHA"]
    full_key = cache.make_and_validate_key(key)
    assert cache.get(key) == 3
    assert 0 < cache._cache.get_client(full_key).ttl(full_key) <= 30
    cache.delete(key)


def test_the_anonymous_rate_counts_per_address(rates, address):
    rates(anon="2/day", user="100/day")
    client = Client()
    statuses = [client.get("/api/schema/", REMOTE_ADDR=address).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    window = int(time.time() // DAY)
    counts = [cache.get(f"throttle_anon_{address}:{n}") for n in (window - 1, window)]
    assert sum(count or 0 for count in counts) == 3  # the count lives in Redis
    # Another address has its own count.
    other = _fresh_address()
    assert client.get("/api/schema/", REMOTE_ADDR=other).status_code == 200
    _forget(f"throttle_anon_{other}")


def test_off_disables_a_rate(rates, address):
    rates(anon=None, user=None)
    client = Client()
    assert all(client.get("/api/schema/", REMOTE_ADDR=address).status_code == 200 for _ in range(5))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("100/minute", "100/minute"), ("5/S", "5/s"), ("off", None), ("None", None), ("", "9/d")],
)
def test_rates_are_read_from_the_environment(monkeypatch, raw, expected):
    monkeypatch.setenv("CADENZA_API_USER_RATE", raw)
    assert env_rate("CADENZA_API_USER_RATE", "9/d") == expected


@pytest.mark.parametrize("raw", ["100", "ten/minute", "0/minute", "5/fortnight"])
def test_odd_rates_stop_the_start(monkeypatch, raw):
    monkeypatch.setenv("CADENZA_API_USER_RATE", raw)
    with pytest.raises(ImproperlyConfigured, match="CADENZA_API_USER_RATE"):
        env_rate("CADENZA_API_USER_RATE", "9/d")


# --- Log-in lock ---------------------------------------------------------------------------


@pytest.fixture
def locking(settings):
    settings.CADENZA_LOGIN_MAX_FAILURES = 3
    settings.CADENZA_LOGIN_LOCKOUT_SECONDS = 2
    return make_user(f"dora-{uuid.uuid4().hex[:8]}", is_staff=True)


def _log_in(client, username, password, *, path="/accounts/login/", ip="127.0.0.1"):
    return client.post(path, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_failed_logins_lock_then_the_lock_ends(locking, address):
    user, client = locking, Client()
    for _ in range(3):
        response = _log_in(client, user.username, "wrong", ip=address)
        assert response.status_code == 200  # the form again, with its error
    locked = _log_in(client, user.username, PASSWORD, ip=address)  # even the right password
    assert locked.status_code == 429
    text = locked.content.decode()
    assert "Too many failed log-ins" in text
    assert f"“{user.username}”" in text and "Try again in" in text
    assert 1 <= int(locked["Retry-After"]) <= 2
    admin = _log_in(client, user.username, PASSWORD, path="/admin/login/", ip=address)
    assert admin.status_code == 429  # the admin's log-in shares the lock

    deadline = time.monotonic() + 10
    while login_locked_until(user.username, address) is not None:
        assert time.monotonic() < deadline, "the lock did not end"
        time.sleep(0.05)
    response = _log_in(client, user.username, PASSWORD, ip=address)
    assert response.status_code == 302, "the right password works again after the lock"


def test_the_lock_is_per_username_and_address(locking, address):
    user = locking
    for _ in range(3):
        _log_in(Client(), user.username, "wrong", ip=address)
    assert _log_in(Client(), user.username, PASSWORD, ip=address).status_code == 429
    # The same account from another address, and another account from this one, still work.
    assert _log_in(Client(), user.username, PASSWORD, ip="192.0.2.77").status_code == 302
    other = make_user(f"eve-{uuid.uuid4().hex[:8]}")
    assert _log_in(Client(), other.username, PASSWORD, ip=address).status_code == 302


def test_a_successful_login_forgets_earlier_failures(locking, address):
    user = locking
    for _ in range(2):
        _log_in(Client(), user.username, "wrong", ip=address)
    assert _log_in(Client(), user.username, PASSWORD, ip=address).status_code == 302
    for _ in range(2):
        _log_in(Client(), user.username, "wrong", ip=address)
    assert login_locked_until(user.username, address) is None


def test_a_cache_outage_fails_open(settings, rates, caplog):
    """Redis down: the API and log-in still answer (uncounted), with a warning in the log."""
    rates(anon="1/day", user="1/day")
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
        }
    }
    user = make_user(f"calm-{uuid.uuid4().hex[:8]}")
    client = Client()
    client.force_login(user)
    assert [client.get("/api/v1/me/").status_code for _ in range(3)] == [200, 200, 200]
    assert _log_in(Client(), user.username, "wrong").status_code == 200
    assert _log_in(Client(), user.username, PASSWORD).status_code == 302
    assert "the cache is unavailable" in caplog.text


# --- CSRF ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/accounts/login/", "/admin/login/"])
def test_a_login_post_without_a_csrf_token_is_refused(path):
    user = make_user(f"csrf-{uuid.uuid4().hex[:8]}", is_staff=True)
    client = Client(enforce_csrf_checks=True)
    refused = client.post(path, {"username": user.username, "password": PASSWORD})
    assert refused.status_code == 403
    assert b"CSRF" in refused.content

    form = client.get(path).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    data = {"username": user.username, "password": PASSWORD, "csrfmiddlewaretoken": token}
    assert client.post(path, data).status_code == 302
