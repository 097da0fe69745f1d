"""Levity settings.

Every setting an operator may change is read from the environment here, and only
here, through the small typed helpers below. A malformed value stops start-up
with a message naming the variable.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false.")


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def envfloat(name: str, default: float, *, minimum: float | None = None) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def envjson(name: str, default):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ImproperlyConfigured(f"{name} is not valid JSON: {exc}") from None


def envsecret(name: str, keep_in: Path) -> str:
    """Read a secret from NAME, NAME_FILE, or a file generated on first run.

    The generated file is written under a temporary name created with mode 0600
    (never readable by others, not even for a moment), then linked into place
    atomically: of two first starts at once, one links its file, and the other
    reads that one.
    """
    if os.environ.get(name):
        return os.environ[name]
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    if keep_in.exists():
        return _stored_secret(keep_in)
    value = secrets.token_urlsafe(50)
    fd, temporary = tempfile.mkstemp(dir=keep_in.parent, prefix=f"{keep_in.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as file:
            file.write(value)
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, keep_in)
        except FileExistsError:  # another process generated it first
            return _stored_secret(keep_in)
    finally:
        os.unlink(temporary)
    return value


def _stored_secret(path: Path) -> str:
    value = path.read_text().strip()
    if not value:
        raise ImproperlyConfigured(f"{path} is empty; delete it to generate a new secret key.")
    return value


def envloglevel(name: str, default: str) -> str:
    """A logging level name (DEBUG, INFO, WARNING, ERROR, CRITICAL)."""
    raw = os.environ.get(name, "").strip() or default
    value = raw.upper()
    if value not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a log level; use DEBUG, INFO, WARNING, ERROR or CRITICAL."
        )
    return value


def envurl(name: str, default: str, *, schemes: tuple[str, ...], example: str) -> str:
    """A URL with one of ``schemes`` and, unless it is a unix socket, a host.

    The value is not repeated in the message: such URLs may carry a password.
    """
    raw = os.environ.get(name, "").strip() or default
    if not raw:
        return raw
    problem = None
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        problem = "is not a valid URL"
    else:
        if parts.scheme not in schemes:
            problem = f"must start with {' or '.join(s + '://' for s in schemes)}"
        elif parts.scheme != "unix" and not parts.hostname:
            problem = "names no host"
        elif parts.scheme == "unix" and not parts.path:
            problem = "names no socket path"
    if problem:
        raise ImproperlyConfigured(f"{name} {problem}; e.g. {example}.")
    return raw


DEBUG = envbool("DEBUG", False)
SECRET_KEY = envsecret("SECRET_KEY", BASE_DIR / ".secret_key")
ALLOWED_HOSTS = [h.strip() for h in envstr("ALLOWED_HOSTS", "*").split(",") if h.strip()]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in envstr("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()
]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "chargepoints",
    "transactions",
    "plugins",
    "plugins.auto_remote_start",
    "plugins.orphaned_transactions",
    "plugins.transaction_webhook",
    "plugins.fluentd_audit",
    "plugins.prometheus_metrics",
    *[a.strip() for a in envstr("LEVITY_EXTRA_APPS", "").split(",") if a.strip()],
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, not second: WhiteNoise is synchronous only, and a synchronous innermost
    # middleware makes Django run the whole chain in one worker thread per request.
    # Anywhere else, every middleware after it hops between the event loop and a
    # thread for each process_request/process_response (measured: 5.8 -> 3.2 ms of
    # CPU per API request under daphne). Static files are served all the same.
    "whitenoise.middleware.WhiteNoiseMiddleware",
]

ROOT_URLCONF = "levity_site.urls"
ASGI_APPLICATION = "levity_site.asgi.application"

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

# Database: SQLite file levity.db by default (WAL, immediate transactions so that
# concurrent writers queue instead of failing); DATABASE_URL selects PostgreSQL.
DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{BASE_DIR / 'levity.db'}")
#: How long the OCPP sessions' database thread keeps its connection; an HTTP
#: request's connections are closed when it ends (levity_site.connections).
DATABASE_CONN_MAX_AGE = envint("DATABASE_CONN_MAX_AGE", 600, minimum=0)


def _database(url: str) -> dict:
    import dj_database_url

    try:
        # Persistent connections: the OCPP session reaches the database many times a
        # second through channels' database_sync_to_async, which would otherwise
        # reopen the connection on every message.
        config = dj_database_url.parse(url, conn_max_age=DATABASE_CONN_MAX_AGE)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL={url!r} is not usable: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
            ),
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    elif config["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"DATABASE_URL={url!r}: Levity supports sqlite:/// and postgres:// URLs."
        )
    return config


DATABASES = {"default": _database(DATABASE_URL)}
#: SQLite only: how often a server process checkpoints the write-ahead log from a
#: thread of its own (levity_site.sqlite); 0 leaves it to SQLite, inside commits.
#: A checkpoint with nothing to do costs next to nothing.
LEVITY_SQLITE_CHECKPOINT_SECONDS = envfloat("LEVITY_SQLITE_CHECKPOINT_SECONDS", 0.1, minimum=0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def _gc_thresholds(name: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        values = tuple(int(part) for part in raw.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 1:
        raise ImproperlyConfigured(
            f"{name}={raw!r} must be three whole numbers of at least 1, e.g. 5000,10,100."
        )
    return values


#: The server process's garbage-collector thresholds (gc.set_threshold). Python's
#: (700, 10, 10) run a full collection after every ten middle ones while the heap
#: grows, and messages in flight keep it growing: with 1,000 charge points bench/
#: counted 30 full collections a minute at ~145 ms each (3.4 s), and 0.5 s of a
#: reconnect storm. A third number of 100 makes them ten times rarer. A first
#: number of 5,000 lets more short-lived objects die before a collection has to
#: trace them: over bench/'s throughput scenarios the young and middle collections
#: took 2.6 s in all (3.9 s at 2,000; 1.9 s at 20,000, but with pauses of 325 ms),
#: with pauses under 60 ms, and a reconnect storm of 1,000 spent 190 ms in them
#: (230 ms at 2,000).
LEVITY_GC_THRESHOLDS = _gc_thresholds("LEVITY_GC_THRESHOLDS", (5_000, 10, 100))

# Channel layer: in-memory for one process; REDIS_URL lets several daphne
# processes reach each other's charge points.
REDIS_URL = envurl(
    "REDIS_URL", "", schemes=("redis", "rediss", "unix"), example="redis://127.0.0.1:6379/0"
)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # channels-redis waits for messages with a 5 s BZPOPMIN; redis-py's default
            # socket_timeout is also 5 s, so an idle wait could time out on the client
            # first and kill a live WebSocket (seen under load by bench/). Read longer.
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]},
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# The admin must render under daphne without DEBUG static serving: WhiteNoise
# serves collected files, and falls back to the app finders when collectstatic
# has not been run.
WHITENOISE_USE_FINDERS = True

LOG_LEVEL = envloglevel("LOG_LEVEL", "INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "daphne": {"level": "WARNING"},
        "django.channels.server": {"level": "WARNING"},
        "ocpp": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
    },
}

# --- Levity -------------------------------------------------------------------

# Register unknown charge point ids on first connect (true) or refuse them (false).
LEVITY_AUTO_REGISTER = envbool("LEVITY_AUTO_REGISTER", True)
# Heartbeat interval (seconds) sent in BootNotification.conf.
LEVITY_HEARTBEAT_INTERVAL = envint("LEVITY_HEARTBEAT_INTERVAL", 300, minimum=1)
# How long a CS->CP call waits for the charge point's answer, by default.
LEVITY_CALL_TIMEOUT = envfloat("LEVITY_CALL_TIMEOUT", 30.0, minimum=0.1)
# Last-seen/last-heartbeat times are kept in memory and written in bulk this often.
LEVITY_LAST_SEEN_FLUSH_SECONDS = envfloat("LEVITY_LAST_SEEN_FLUSH_SECONDS", 30.0, minimum=0.1)
# Each server process refreshes its ServerProcess row this often (0: not at all);
# the charge points of a process silent for three times as long (killed, or its
# machine lost) are marked offline by the others, or by the next one to start.
LEVITY_PROCESS_ALIVE_SECONDS = envfloat("LEVITY_PROCESS_ALIVE_SECONDS", 30.0, minimum=0)
# Lenient mode accepts payload fields the 1.6 schemas do not define (dropping
# them) instead of answering FormationViolation.
LEVITY_OCPP_LENIENT = envbool("LEVITY_OCPP_LENIENT", False)
# A charge point's timestamp further than this many seconds ahead of the server's
# clock is stored as reported but ordered by the server's receive time, and logged
# (docs/operations.md, "Data integrity rules").
LEVITY_CLOCK_SKEW_TOLERANCE = envfloat("LEVITY_CLOCK_SKEW_TOLERANCE", 300.0, minimum=0)
# AFTER hooks still running when a charge point disconnects get this long to finish.
LEVITY_AFTER_HOOK_GRACE_SECONDS = envfloat("LEVITY_AFTER_HOOK_GRACE_SECONDS", 2.0, minimum=0)
# A plugin's BEFORE hook delays the answer: one that takes longer than this is
# cancelled and logged, and the answer goes out without it.
LEVITY_BEFORE_HOOK_TIMEOUT = envfloat("LEVITY_BEFORE_HOOK_TIMEOUT", 5.0, minimum=0.01)
# The same bound for AFTER hooks, initialize() and cleanup().
LEVITY_PLUGIN_HOOK_TIMEOUT = envfloat("LEVITY_PLUGIN_HOOK_TIMEOUT", 30.0, minimum=0.1)
# Plugins: a list of {"class": ..., "options": {...}, "charge_points": [...]}, or
# the dotted path of a factory called once per connection.
LEVITY_PLUGINS = envjson("LEVITY_PLUGINS", [])
LEVITY_PLUGIN_FACTORY = envstr("LEVITY_PLUGIN_FACTORY", "")
if not isinstance(LEVITY_PLUGINS, list):
    raise ImproperlyConfigured("LEVITY_PLUGINS must be a JSON list of plugin entries.")

# --- Remote operations and the HTTP API -------------------------------------------

# Upper bound of the `timeout` a command may ask for (seconds).
LEVITY_COMMAND_MAX_TIMEOUT = envfloat("LEVITY_COMMAND_MAX_TIMEOUT", 300.0, minimum=1)
# With REDIS_URL: how long to wait for the server process holding a charge point
# to acknowledge a routed command before calling the charge point offline.
LEVITY_COMMAND_ROUTE_TIMEOUT = envfloat("LEVITY_COMMAND_ROUTE_TIMEOUT", 2.0, minimum=0.1)
# Where the manage.py remote-operation commands reach the running server.
LEVITY_API_URL = envurl(
    "LEVITY_API_URL", "http://127.0.0.1:9000", schemes=("http", "https"), example="http://127.0.0.1:9000"
).rstrip("/")
# An API request body nested deeper than this (JSON arrays/objects) is a 400 parse error.
LEVITY_API_JSON_MAX_DEPTH = envint("LEVITY_API_JSON_MAX_DEPTH", 32, minimum=1)
# A token for those commands when they cannot mint their own in the database.
LEVITY_API_TOKEN = envstr("LEVITY_API_TOKEN", "")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "chargepoints.api.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["chargepoints.api.permissions.IsTokenOrStaff"],
    "DEFAULT_PAGINATION_CLASS": "chargepoints.api.pagination.Pagination",
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "chargepoints.api.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "chargepoints.api.errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Levity API",
    "DESCRIPTION": (
        "Read charge points, connectors, transactions and meter values, and send "
        "OCPP 1.6 commands to connected charge points. Authenticate with "
        "`Authorization: Bearer <token>` (tokens are created in the admin)."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from this server (works on networks without internet access).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ConnectorStatusEnum": "chargepoints.models.ChargePointStatus",
        "CommandStatusEnum": "chargepoints.models.CommandStatus",
        "IdTagStatusEnum": "transactions.models.AuthorizationStatus",
    },
}

# Observability plugins (docs/observability.md). A separate /metrics listener, the
# spec's metrics_port: 0 = none. Setting it (or listing PrometheusMetricsPlugin in
# LEVITY_PLUGINS) turns the metrics on; /metrics is then also on the main port.
LEVITY_METRICS_PORT = envint("LEVITY_METRICS_PORT", 0, minimum=0)
LEVITY_METRICS_ADDRESS = envstr("LEVITY_METRICS_ADDRESS", "0.0.0.0")
# Several daphne processes share their metrics through this directory (prometheus
# client's multiprocess mode; it reads the variable itself). Empty it before start.
PROMETHEUS_MULTIPROC_DIR = envstr("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is not a directory; create it."
    )
# Fluentd audit records wait in a queue of this many records for the sender thread
# (full: the oldest is dropped), and in a buffer of this many bytes while Fluentd is
# away (overflowing: the buffer is dropped). Drops are counted and logged.
LEVITY_FLUENTD_QUEUE_SIZE = envint("LEVITY_FLUENTD_QUEUE_SIZE", 1000, minimum=1)
LEVITY_FLUENTD_BUFFER_BYTES = envint("LEVITY_FLUENTD_BUFFER_BYTES", 1024 * 1024, minimum=1024)
