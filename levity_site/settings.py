"""Levity settings.

Every setting an operator may change is read from the environment here, and only
here, through the small typed helpers below. A malformed value stops start-up
with a message naming the variable.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

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


def envnetworks(name: str) -> list:
    """A comma-separated list of IP addresses or networks (CIDR)."""
    import ipaddress

    networks = []
    for part in os.environ.get(name, "").split(","):
        if part.strip():
            try:
                networks.append(ipaddress.ip_network(part.strip(), strict=False))
            except ValueError:
                raise ImproperlyConfigured(
                    f"{name}: {part.strip()!r} is not an IP address or network."
                ) from None
    return networks


def envsecret(name: str, keep_in: Path) -> str:
    """Read a secret from NAME, NAME_FILE, or a file generated on first run."""
    if os.environ.get(name):
        return os.environ[name]
    if os.environ.get(f"{name}_FILE"):
        return Path(os.environ[f"{name}_FILE"]).read_text().strip()
    if keep_in.exists():
        return keep_in.read_text().strip()
    value = secrets.token_urlsafe(50)
    keep_in.write_text(value)
    keep_in.chmod(0o600)
    return value


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
#: PostgreSQL: each process keeps a psycopg connection pool of this many connections
#: (the sessions' database thread and the HTTP requests' threads take one each while
#: they work, and put it back); a thread waits up to DATABASE_POOL_TIMEOUT seconds
#: for one. DATABASE_POOL_MAX_SIZE=0 turns the pool off (DATABASE_CONN_MAX_AGE then
#: applies, e.g. behind PgBouncer).
DATABASE_POOL_MIN_SIZE = envint("DATABASE_POOL_MIN_SIZE", 2, minimum=0)
DATABASE_POOL_MAX_SIZE = envint("DATABASE_POOL_MAX_SIZE", 10, minimum=0)
DATABASE_POOL_TIMEOUT = envfloat("DATABASE_POOL_TIMEOUT", 10.0, minimum=0.1)
if DATABASE_POOL_MAX_SIZE and DATABASE_POOL_MIN_SIZE > DATABASE_POOL_MAX_SIZE:
    raise ImproperlyConfigured(
        f"DATABASE_POOL_MIN_SIZE={DATABASE_POOL_MIN_SIZE} is more than "
        f"DATABASE_POOL_MAX_SIZE={DATABASE_POOL_MAX_SIZE}."
    )


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
    elif DATABASE_POOL_MAX_SIZE:
        config["CONN_MAX_AGE"] = 0  # the pool keeps the connections (Django requires 0)
        config.setdefault("OPTIONS", {})["pool"] = {
            "min_size": DATABASE_POOL_MIN_SIZE,
            "max_size": DATABASE_POOL_MAX_SIZE,
            "timeout": DATABASE_POOL_TIMEOUT,
        }
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
REDIS_URL = envstr("REDIS_URL", "")
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "chargepoints.session.channel_layer.ResilientRedisChannelLayer",
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

LOG_LEVEL = envstr("LOG_LEVEL", "INFO").upper()
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

# false: refuse unknown charge point ids, whatever LEVITY_UNKNOWN_CHARGE_POINTS says.
LEVITY_AUTO_REGISTER = envbool("LEVITY_AUTO_REGISTER", True)

# --- Charge point security (docs/security.md) ---------------------------------------

#: What becomes of a charge point id Levity does not know: registered Pending until
#: an operator accepts it (pending), registered Accepted (accept), or refused
#: (refuse). LEVITY_AUTO_REGISTER=false still means refuse.
LEVITY_UNKNOWN_CHARGE_POINTS = envstr("LEVITY_UNKNOWN_CHARGE_POINTS", "pending").strip().lower()
if LEVITY_UNKNOWN_CHARGE_POINTS not in ("pending", "accept", "refuse"):
    raise ImproperlyConfigured(
        f"LEVITY_UNKNOWN_CHARGE_POINTS={LEVITY_UNKNOWN_CHARGE_POINTS!r}: use pending, accept or refuse."
    )
if not LEVITY_AUTO_REGISTER:
    LEVITY_UNKNOWN_CHARGE_POINTS = "refuse"
#: The security profile (0-3) of a charge point whose own profile is not set.
LEVITY_DEFAULT_SECURITY_PROFILE = envint("LEVITY_DEFAULT_SECURITY_PROFILE", 0, minimum=0)
if LEVITY_DEFAULT_SECURITY_PROFILE > 3:
    raise ImproperlyConfigured(
        f"LEVITY_DEFAULT_SECURITY_PROFILE={LEVITY_DEFAULT_SECURITY_PROFILE}: use 0, 1, 2 or 3."
    )
#: Addresses (or networks, CIDR) of the reverse proxies whose X-Forwarded-Proto and
#: client-certificate headers are believed. Empty: nobody's.
LEVITY_TRUSTED_PROXIES = envnetworks("LEVITY_TRUSTED_PROXIES")
#: PEM file of the CA(s) that issue charge points' client certificates (profile 3).
LEVITY_CLIENT_CA_FILE = envstr("LEVITY_CLIENT_CA_FILE", "")
if LEVITY_CLIENT_CA_FILE and not Path(LEVITY_CLIENT_CA_FILE).is_file():
    raise ImproperlyConfigured(f"LEVITY_CLIENT_CA_FILE={LEVITY_CLIENT_CA_FILE!r} is not a file.")
#: The subject field of a client certificate that must equal the charge point id.
LEVITY_CLIENT_CERT_ID_FIELD = envstr("LEVITY_CLIENT_CERT_ID_FIELD", "CN")
if LEVITY_CLIENT_CERT_ID_FIELD not in ("CN", "serialNumber", "UID"):
    raise ImproperlyConfigured(
        f"LEVITY_CLIENT_CERT_ID_FIELD={LEVITY_CLIENT_CERT_ID_FIELD!r}: use CN, serialNumber or UID."
    )
#: A verified Basic password is remembered (as a keyed hash) this long, so that a
#: reconnect storm does not run the slow password hasher for every charge point.
LEVITY_PASSWORD_CACHE_SECONDS = envfloat("LEVITY_PASSWORD_CACHE_SECONDS", 600.0, minimum=0)
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
# Server processes `python -m levity_site.server` (and scripts/serve) starts on its
# port (SO_REUSEPORT); more than 1 needs REDIS_URL.
LEVITY_WORKERS = envint("LEVITY_WORKERS", 1, minimum=1)
# WebSocket keep-alive: a ping after this many idle seconds; no pong within the
# timeout closes the connection and records the charge point offline.
LEVITY_WEBSOCKET_PING_INTERVAL = envint("LEVITY_WEBSOCKET_PING_INTERVAL", 20, minimum=1)
LEVITY_WEBSOCKET_PING_TIMEOUT = envint("LEVITY_WEBSOCKET_PING_TIMEOUT", 10, minimum=1)
# /readyz answers 503 when the database or the channel layer takes longer than this.
LEVITY_READY_TIMEOUT = envfloat("LEVITY_READY_TIMEOUT", 3.0, minimum=0.1)
# Lenient mode accepts payload fields the 1.6 schemas do not define (dropping
# them) instead of answering FormationViolation.
LEVITY_OCPP_LENIENT = envbool("LEVITY_OCPP_LENIENT", False)
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

# Retention (manage.py prune): meter values, connector status history and the
# command log older than this many days are deleted; 0 keeps them for ever. The
# three LEVITY_*_RETENTION_DAYS override LEVITY_RETENTION_DAYS for one kind each.
LEVITY_RETENTION_DAYS = envint("LEVITY_RETENTION_DAYS", 0, minimum=0)
LEVITY_METER_VALUE_RETENTION_DAYS = envint(
    "LEVITY_METER_VALUE_RETENTION_DAYS", LEVITY_RETENTION_DAYS, minimum=0
)
LEVITY_STATUS_RETENTION_DAYS = envint("LEVITY_STATUS_RETENTION_DAYS", LEVITY_RETENTION_DAYS, minimum=0)
LEVITY_COMMAND_RETENTION_DAYS = envint("LEVITY_COMMAND_RETENTION_DAYS", LEVITY_RETENTION_DAYS, minimum=0)

# --- Remote operations and the HTTP API -------------------------------------------

# Upper bound of the `timeout` a command may ask for (seconds).
LEVITY_COMMAND_MAX_TIMEOUT = envfloat("LEVITY_COMMAND_MAX_TIMEOUT", 300.0, minimum=1)
# With REDIS_URL: how long to wait for the server process holding a charge point
# to acknowledge a routed command before calling the charge point offline.
LEVITY_COMMAND_ROUTE_TIMEOUT = envfloat("LEVITY_COMMAND_ROUTE_TIMEOUT", 2.0, minimum=0.1)
# Where the manage.py remote-operation commands reach the running server.
LEVITY_API_URL = envstr("LEVITY_API_URL", "http://127.0.0.1:9000").rstrip("/")
# A token for those commands when they cannot mint their own in the database.
LEVITY_API_TOKEN = envstr("LEVITY_API_TOKEN", "")

# --- The CA that signs charge point certificates (security extension, SignCertificate) ---

# Its certificate (PEM; the issuing CA first, then any intermediates to send along)
# and private key (PEM). Both unset: SignCertificate is answered Rejected.
LEVITY_CSMS_CA_CERT_FILE = envstr("LEVITY_CSMS_CA_CERT_FILE", "")
LEVITY_CSMS_CA_KEY_FILE = envstr("LEVITY_CSMS_CA_KEY_FILE", "")
# The key's passphrase, if it is encrypted (or a file holding it).
LEVITY_CSMS_CA_KEY_PASSWORD = envstr("LEVITY_CSMS_CA_KEY_PASSWORD", "")
if not LEVITY_CSMS_CA_KEY_PASSWORD and envstr("LEVITY_CSMS_CA_KEY_PASSWORD_FILE"):
    try:
        LEVITY_CSMS_CA_KEY_PASSWORD = (
            Path(envstr("LEVITY_CSMS_CA_KEY_PASSWORD_FILE")).read_text().strip()
        )
    except OSError as exc:
        raise ImproperlyConfigured(
            f"LEVITY_CSMS_CA_KEY_PASSWORD_FILE cannot be read: {exc.strerror}."
        ) from None
# Days a certificate issued to a charge point is valid (never beyond the CA's own).
LEVITY_CSMS_CERT_VALIDITY_DAYS = envint("LEVITY_CSMS_CERT_VALIDITY_DAYS", 365, minimum=1)
# The smallest keys a charge point's CSR may carry (the whitepaper's minimums).
LEVITY_CSMS_CSR_MIN_RSA_BITS = envint("LEVITY_CSMS_CSR_MIN_RSA_BITS", 2048, minimum=1024)
LEVITY_CSMS_CSR_MIN_EC_BITS = envint("LEVITY_CSMS_CSR_MIN_EC_BITS", 224, minimum=160)

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

# --- Limits (docs/security.md, "Limits") ------------------------------------------

# Largest WebSocket frame or message a charge point may send (bytes; 0: daphne's own
# --websocket-max-message-size/--websocket-max-frame-size only). Larger: closed with 1009.
LEVITY_MAX_FRAME_BYTES = envint("LEVITY_MAX_FRAME_BYTES", 1024 * 1024, minimum=0)
# CALLs a charge point may send per second on average (0: no limit), and at once.
# Past it: a CALLERROR; still past it after LEVITY_CALL_RATE_CLOSE_AFTER_SECONDS: closed with 1008.
LEVITY_CALL_RATE = envfloat("LEVITY_CALL_RATE", 10.0, minimum=0)
LEVITY_CALL_BURST = envint("LEVITY_CALL_BURST", 60, minimum=1)
LEVITY_CALL_RATE_CLOSE_AFTER_SECONDS = envfloat("LEVITY_CALL_RATE_CLOSE_AFTER_SECONDS", 10.0, minimum=0)
# CALLs of one charge point waiting to be handled; past it the server stops reading its socket.
LEVITY_MAX_QUEUED_CALLS = envint("LEVITY_MAX_QUEUED_CALLS", 16, minimum=1)
# Frames of one connection waiting for its session; past it the server stops reading its socket.
LEVITY_MAX_QUEUED_FRAMES = envint("LEVITY_MAX_QUEUED_FRAMES", 16, minimum=1)
# Sampled values one MeterValues may carry (0: no limit); past it: OccurenceConstraintViolation.
LEVITY_MAX_SAMPLED_VALUES = envint("LEVITY_MAX_SAMPLED_VALUES", 1000, minimum=0)
# Open WebSocket sessions per client address and server process (0: no limit).
LEVITY_MAX_CONNECTIONS_PER_ADDRESS = envint("LEVITY_MAX_CONNECTIONS_PER_ADDRESS", 0, minimum=0)
# Failed WebSocket handshakes (refused id, no subprotocol, bad credentials) an address may
# make within the window before its handshakes are refused until the window has passed (0: off).
LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS = envint("LEVITY_HANDSHAKE_FAILURES_PER_ADDRESS", 30, minimum=0)
LEVITY_HANDSHAKE_FAILURE_WINDOW_SECONDS = envfloat(
    "LEVITY_HANDSHAKE_FAILURE_WINDOW_SECONDS", 60.0, minimum=1
)
# From accept until the first HTTP request has arrived whole or the WebSocket is open
# (seconds; bytes do not extend it; 0: Twisted's idle timeout only).
LEVITY_HANDSHAKE_TIMEOUT_SECONDS = envfloat("LEVITY_HANDSHAKE_TIMEOUT_SECONDS", 10.0, minimum=0)
# Largest HTTP request body (bytes, by its declared size, before it is read; 0: no limit).
LEVITY_MAX_REQUEST_BODY_BYTES = envint("LEVITY_MAX_REQUEST_BODY_BYTES", 1024 * 1024, minimum=0)
