"""Cadenza settings, read from the environment (see README "Configuration").

No REDIS_URL: embedded mode (one process, SQLite, in-memory broker and channel layer).
With REDIS_URL: distributed mode (PostgreSQL via DATABASE_URL, Redis broker and channel layer).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from kombu import Queue

from apps.system.log_format import logging_config
from config.env import (
    database_from_url,
    env_bool,
    env_choice,
    env_int,
    env_int_range,
    env_list,
    env_rate,
    env_secret,
    env_str,
    redis_url,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("CADENZA_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _owner_only(path: Path, *, folder: bool = False) -> None:
    """Create ``path`` for this account only, or make it so if this account owns it. User
    code runs as other accounts (apps/scenarios/sandbox.py): they must read neither the
    database nor the projects' files kept here (docs/security.md)."""
    try:
        if folder:
            path.mkdir(mode=0o700)
        else:
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        if path.stat().st_uid == os.geteuid():
            path.chmod(0o700 if folder else 0o600)


# The default connection's datasets, model artifacts, flow documentation exports.
for _folder in ("data", "models", "exports"):
    _owner_only(VAR_DIR / _folder, folder=True)

REDIS_URL = redis_url()
MODE = "distributed" if REDIS_URL else "embedded"

DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_secret("SECRET_KEY")
    if key:
        if len(key) < 32:
            raise ImproperlyConfigured("SECRET_KEY must be at least 32 characters long.")
        return key
    if MODE == "distributed":
        raise ImproperlyConfigured("Distributed mode needs SECRET_KEY or SECRET_KEY_FILE.")
    # Embedded mode: one key per installation, kept beside the database.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
CADENZA_BASE_URL = env_str("CADENZA_BASE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "apps.accounts",
    "apps.projects",
    "apps.system",
    "apps.flow",
    "apps.quality",
    "apps.ml",
    "apps.dashboards",
    "apps.scenarios",
    "apps.triggers",
    "apps.runs",
    "apps.reporters",
    "apps.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "apps.system.throttling.LoginThrottleMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL")
if _database_url:
    DATABASES = {"default": database_from_url(_database_url)}
elif MODE == "distributed":
    raise ImproperlyConfigured("Distributed mode (REDIS_URL set) needs DATABASE_URL (PostgreSQL).")
else:
    DATABASES = {"default": sqlite_database(VAR_DIR / "cadenza.sqlite3")}

# Web processes (`manage.py serve` sets this in distributed mode) borrow connections from a pool
# of at most this many. Under ASGI each request runs in a context of its own and a persistent
# connection stays behind with it: at 50 concurrent clients they piled up to "too many clients".
# Celery workers keep their persistent connection per thread (0: no pool).
CADENZA_DB_POOL_SIZE = env_int("CADENZA_DB_POOL_SIZE", 0, minimum=0, maximum=100)
if CADENZA_DB_POOL_SIZE and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps them open
    DATABASES["default"]["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": CADENZA_DB_POOL_SIZE,
        "timeout": 10,  # seconds to wait for a free connection before failing the request
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
# Serve straight from the app and project folders when collectstatic has not run.
WHITENOISE_USE_FINDERS = not STATIC_ROOT.joinpath("admin").exists()

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# --- HTTPS and security headers (docs/operations.md) ------------------------------------------
# CADENZA_HTTPS=1 says users reach Cadenza over HTTPS: secure cookies, HTTPS redirect and HSTS.
CADENZA_HTTPS = env_bool("CADENZA_HTTPS", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", CADENZA_HTTPS)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env_bool("CADENZA_SSL_REDIRECT", CADENZA_HTTPS)
# Probes and scrapers often speak plain HTTP on the internal network.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^healthz$", r"^metrics$"]
SECURE_HSTS_SECONDS = env_int("CADENZA_HSTS_SECONDS", 31536000 if CADENZA_HTTPS else 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("CADENZA_HSTS_INCLUDE_SUBDOMAINS", CADENZA_HTTPS)
# Preload asks browser vendors to hard-code the domain: only its owner can decide that.
SECURE_HSTS_PRELOAD = env_bool("CADENZA_HSTS_PRELOAD", False)
# Opt-in: trust X-Forwarded-Proto only when a proxy you run sets (and overwrites) it.
if env_bool("CADENZA_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True

# --- Cadenza ---------------------------------------------------------------------------------
# Ed25519 public key (base64 of the 32 raw bytes, or PEM) that verifies installed licenses.
CADENZA_LICENSE_PUBLIC_KEY = env_secret("CADENZA_LICENSE_PUBLIC_KEY")
CADENZA_ADMIN_PASSWORD = env_secret("CADENZA_ADMIN_PASSWORD")
# `make run` seeds a demo project (manage.py seed_demo) unless this is off.
CADENZA_DEMO = env_bool("CADENZA_DEMO", True)

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "apps.accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # DRF's three, refusing what PostgreSQL cannot store (NUL characters).
    "DEFAULT_PARSER_CLASSES": [
        "apps.system.parsers.JSONParser",
        "apps.system.parsers.FormParser",
        "apps.system.parsers.MultiPartParser",
    ],
    # Generous defaults: they stop a runaway script, not a busy team (docs/operations.md).
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.system.throttling.ApiAnonThrottle",
        "apps.system.throttling.ApiUserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_rate("CADENZA_API_ANON_RATE", "300/minute"),
        "user": env_rate("CADENZA_API_USER_RATE", "3000/minute"),
    },
    # Proxies in front of Cadenza that append to X-Forwarded-For (0: use the peer address).
    "NUM_PROXIES": env_int("CADENZA_NUM_PROXIES", 0, minimum=0, maximum=10) or None,
}
# Failed log-ins (pages and admin) per username and address before a lock of the same length.
CADENZA_LOGIN_MAX_FAILURES = env_int("CADENZA_LOGIN_MAX_FAILURES", 5, minimum=1)
CADENZA_LOGIN_LOCKOUT_SECONDS = env_int("CADENZA_LOGIN_LOCKOUT_SECONDS", 300, minimum=1)
# /metrics: loopback only, unless this bearer token is set (then required from everyone).
CADENZA_METRICS_TOKEN = env_secret("CADENZA_METRICS_TOKEN")
CADENZA_METRICS_WINDOW_SECONDS = env_int(
    "CADENZA_METRICS_WINDOW_SECONDS", 900, minimum=60, maximum=7 * 86400
)
SPECTACULAR_SETTINGS = {
    "TITLE": "Cadenza API",
    "DESCRIPTION": "Automation scenarios for data projects.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a "status"; name each choice set after what it belongs to.
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "apps.runs.models.RunStatus",
        "StepRunStatusEnum": "apps.runs.models.StepRun.Status",
        "ConnectionKindEnum": "apps.flow.models.Connection.Kind",
        "RecipeKindEnum": "apps.flow.models.Recipe.Kind",
    },
}

# --- Celery, beat and Channels -----------------------------------------------------------------
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes every database connection before and after each task unless
# this is set: a connection per run cost the worker ~2 ms and PostgreSQL a backend each
# (bench/throughput.py). Connections are kept, as in a web process, and checked before each
# task instead (config/celery.py); the fixup still recycles them every 1,000 tasks.
CELERY_DB_REUSE_MAX = 1000
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Two queues. "cadenza.system" carries the small, time-critical system tasks (the trigger
# tick, sweeps, heartbeats, health pings); "celery" the runs and deliveries. Every worker
# consumes both, the system queue first (Redis: "sorted" order, and "cadenza.system" sorts
# before "celery"), so a backlog of runs never holds up the tick that created it.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = (Queue("cadenza.system"), Queue("celery"))
CELERY_TASK_ROUTES = {
    name: {"queue": "cadenza.system"}
    for name in (
        "triggers.tick",
        "runs.sweep",
        "reporters.sweep",
        "system.heartbeat",
        "system.ping",
    )
}
# Survives a broker restart while a task is unacknowledged (see the class).
CELERY_WORKER_CONSUMER = "config.celery:Consumer"
CELERY_TIMEZONE = TIME_ZONE
CADENZA_HEARTBEAT_SECONDS = env_int("CADENZA_HEARTBEAT_SECONDS", 15, minimum=1, maximum=3600)
# The periodic system tasks, declared in one place (beat copies them into its tables).
CELERY_BEAT_SCHEDULE = {
    "system-heartbeat": {
        "task": "system.heartbeat",
        "schedule": float(CADENZA_HEARTBEAT_SECONDS),
    },
}

if MODE == "distributed":
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": 3600,
        "queue_order_strategy": "sorted",  # the system queue first (see CELERY_TASK_QUEUES)
    }
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL]},
        }
    }
    # Shared by every web process: API throttles and log-in locks count across all of them.
    # Never cache.clear(): it would FLUSHDB the broker's queues too.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "cadenza",
        }
    }
else:
    CELERY_BROKER_URL = "memory://"
    # kombu's memory transport, woken by each message instead of polling (it polls once a
    # second unless told otherwise: latency; or 100 times a second: idle CPU).
    CELERY_BROKER_TRANSPORT = "apps.system.memory_broker:Transport"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CHANNEL_LAYERS = {"default": {"BACKEND": "apps.runs.layers.ThreadSafeInMemoryChannelLayer"}}

CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

CADENZA_LOG_FORMAT = env_choice("CADENZA_LOG_FORMAT", ("text", "json"), "text")
LOGGING = logging_config(log_format=CADENZA_LOG_FORMAT, level=env_str("LOG_LEVEL", "INFO"))

# --- Scenarios, runs and the sandbox -------------------------------------------------------------
# A worker running as root runs each sandboxed child as a uid (and gid) of its own from this
# range, belonging to no account: no two children share one (apps/scenarios/sandbox.py).
if os.environ.get("CADENZA_SANDBOX_USER"):  # one shared account let children reach each other
    raise ImproperlyConfigured(
        "CADENZA_SANDBOX_USER is no longer read: a root worker runs each child as a uid of its "
        "own from CADENZA_SANDBOX_UIDS (FIRST-LAST). Unset CADENZA_SANDBOX_USER."
    )
CADENZA_SANDBOX_UIDS = env_int_range(
    "CADENZA_SANDBOX_UIDS", range(2_000_000_000, 2_000_001_000), minimum=1000, maximum=2**31 - 2
)
CADENZA_SANDBOX_PYTHON = env_str("CADENZA_SANDBOX_PYTHON")
CADENZA_SANDBOX_TIMEOUT = env_int("CADENZA_SANDBOX_TIMEOUT", 3600, minimum=1)
CADENZA_SANDBOX_MEMORY_MB = env_int("CADENZA_SANDBOX_MEMORY_MB", 2048, minimum=64)
CADENZA_SANDBOX_FILE_MB = env_int("CADENZA_SANDBOX_FILE_MB", 1024, minimum=1)
CADENZA_SANDBOX_PROCESSES = env_int("CADENZA_SANDBOX_PROCESSES", 64, minimum=1)
CADENZA_ALLOW_SHELL = env_bool("CADENZA_ALLOW_SHELL", False)
# A run whose heartbeat is older than this is failed as "worker lost" by the reaper.
# Distributed mode: web processes of `manage.py serve`, one per core by default.
CADENZA_WEB_WORKERS = env_int("CADENZA_WEB_WORKERS", os.cpu_count() or 1, minimum=1, maximum=64)
# Threads per web process serving HTTP requests (config/asgi.py); each holds at most one
# database connection while it serves a request. Three overlap one another's database waits;
# more only fight over the GIL with each other and with the event loop: at 50 API clients on
# 2 cores, 4 or 6 threads served 160-170 requests/s at ~7 ms of CPU each, 3 threads 205-230
# at ~6 ms (docs/performance.md).
CADENZA_WEB_THREADS = env_int("CADENZA_WEB_THREADS", 3, minimum=1, maximum=64)
# Every trigger evaluation is recorded ("why did or didn't this run"); kept this many days.
CADENZA_TRIGGER_EVALUATION_DAYS = env_int(
    "CADENZA_TRIGGER_EVALUATION_DAYS", 7, minimum=1, maximum=3650
)
CADENZA_RUN_HEARTBEAT_SECONDS = env_int("CADENZA_RUN_HEARTBEAT_SECONDS", 5, minimum=1)
CADENZA_REAPER_TIMEOUT = env_int("CADENZA_REAPER_TIMEOUT", 60, minimum=2)
if CADENZA_RUN_HEARTBEAT_SECONDS * 2 > CADENZA_REAPER_TIMEOUT:
    raise ImproperlyConfigured(
        "CADENZA_REAPER_TIMEOUT must be at least twice CADENZA_RUN_HEARTBEAT_SECONDS, "
        "or live runs would be reaped."
    )
CADENZA_REDISPATCH_AFTER = env_int("CADENZA_REDISPATCH_AFTER", 30, minimum=1)
CADENZA_SWEEP_SECONDS = env_int("CADENZA_SWEEP_SECONDS", 10, minimum=1)
CELERY_BEAT_SCHEDULE["runs-sweep"] = {
    "task": "runs.sweep",
    "schedule": float(CADENZA_SWEEP_SECONDS),
}
# Databases that SQL steps may use: "name=URL,name2=URL2" (names are what steps refer to).
CADENZA_SQL_CONNECTIONS = {}
for _item in env_list("CADENZA_SQL_CONNECTIONS", []):
    _name, _, _url = _item.partition("=")
    if not _name or not _url:
        raise ImproperlyConfigured(f"CADENZA_SQL_CONNECTIONS item {_item!r}: use name=URL.")
    CADENZA_SQL_CONNECTIONS[_name] = f"sql_{_name}"
    DATABASES[f"sql_{_name}"] = database_from_url(_url, name=f"CADENZA_SQL_CONNECTIONS[{_name}]")
# SQLite databases, made before SQLite makes them with the umask's mode; the WAL and shared
# memory files it adds take the database's mode (those an older version left, the umask's).
for _database in DATABASES.values():
    _path = Path(_database["NAME"])
    if _database["ENGINE"] != "django.db.backends.sqlite3" or not _path.parent.is_dir():
        continue
    _owner_only(_path)
    for _left in (_path.with_name(_path.name + "-wal"), _path.with_name(_path.name + "-shm")):
        if _left.exists():
            _owner_only(_left)
CADENZA_ABORT_POLL_SECONDS = 0.25  # how often a running run looks for an abort request

# --- Secrets at rest, outbound HTTP and reporters -------------------------------------------
CADENZA_SECRETS_KEY = env_secret("CADENZA_SECRETS_KEY")  # a Fernet key; default: from SECRET_KEY
# Networks outbound HTTP may reach beside public addresses, e.g. "127.0.0.0/8,10.1.0.0/16".
CADENZA_OUTBOUND_ALLOW = env_list("CADENZA_OUTBOUND_ALLOW", [])
CADENZA_DELIVERY_ATTEMPTS = env_int("CADENZA_DELIVERY_ATTEMPTS", 5, minimum=1, maximum=50)
CADENZA_DELIVERY_BACKOFF = env_int("CADENZA_DELIVERY_BACKOFF", 30, minimum=0)  # seconds, doubled
for _network in CADENZA_OUTBOUND_ALLOW:
    try:
        __import__("ipaddress").ip_network(_network, strict=False)
    except ValueError:
        raise ImproperlyConfigured(
            f"CADENZA_OUTBOUND_ALLOW: {_network!r} is not a network."
        ) from None
CELERY_BEAT_SCHEDULE["reporters-sweep"] = {"task": "reporters.sweep", "schedule": 60.0}
# One tick a second claims due trigger slots and checks in batches. Distributed: beat sends it
# (any number of workers share the work). Embedded: a thread of the one process calls the same
# service directly; through beat it cost ~1.5 % of a core at rest (docs/performance.md).
CADENZA_TRIGGER_TICK_IN_PROCESS = env_bool("CADENZA_TRIGGER_TICK_IN_PROCESS", MODE == "embedded")
if not CADENZA_TRIGGER_TICK_IN_PROCESS:
    CELERY_BEAT_SCHEDULE["triggers-tick"] = {"task": "triggers.tick", "schedule": 1.0}
