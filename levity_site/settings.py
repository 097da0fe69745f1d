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
from typing import Any
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
CSRF_TRUSTED_ORIGINS = [o.strip() for o in envstr("CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    # daphne's runserver, which imports daphne only when it runs
    # (levity_site/management/commands/runserver.py); daphne's own app imports it at start-up.
    "levity_site",
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
    "axes",
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
    # Last of the authentication middleware (django-axes' rule): it answers a locked-out login.
    "axes.middleware.AxesMiddleware",
    # Last, not second: WhiteNoise is synchronous only, and a synchronous innermost
    # middleware makes Django run the whole chain in one worker thread per request.
    # Anywhere else, every middleware after it hops between the event loop and a
    # thread for each process_request/process_response, which costs CPU on every API
    # request (bench/results/measurements.md). Static files are served all the same.
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
#: PostgreSQL: the longest (s) a statement of the OCPP sessions' shared write batch
#: waits for a row lock (0: no limit). A request that waits longer -- its row held by
#: an outside slow query -- leaves the batch, which commits for the others, and is
#: retried alone, waiting up to DATABASE_LOCK_RETRY_TIMEOUT; past that its charge
#: point is answered InternalError and resends (chargepoints.session.writer).
DATABASE_LOCK_TIMEOUT = envfloat("DATABASE_LOCK_TIMEOUT", 1.0, minimum=0)
DATABASE_LOCK_RETRY_TIMEOUT = envfloat("DATABASE_LOCK_RETRY_TIMEOUT", 20.0, minimum=0.1)
if DATABASE_POOL_MAX_SIZE and DATABASE_POOL_MIN_SIZE > DATABASE_POOL_MAX_SIZE:
    raise ImproperlyConfigured(
        f"DATABASE_POOL_MIN_SIZE={DATABASE_POOL_MIN_SIZE} is more than "
        f"DATABASE_POOL_MAX_SIZE={DATABASE_POOL_MAX_SIZE}."
    )


def _database(url: str) -> dict[str, Any]:
    import dj_database_url

    try:
        # Persistent connections: the OCPP session reaches the database many times a
        # second through channels' database_sync_to_async, which would otherwise
        # reopen the connection on every message.
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=DATABASE_CONN_MAX_AGE))
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
        raise ImproperlyConfigured(f"DATABASE_URL={url!r}: Levity supports sqlite:/// and postgres:// URLs.")
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
#: grows, and messages in flight keep it growing, so that with many charge points
#: full collections, each a long pause, come often. A third number of 100 makes
#: them ten times rarer. A first number of 5,000 lets more short-lived objects die
#: before a collection has to trace them, with short pauses still (a larger one
#: saves little more and pauses longer). The measurements are in
#: bench/results/measurements.md.
LEVITY_GC_THRESHOLDS = _gc_thresholds("LEVITY_GC_THRESHOLDS", (5_000, 10, 100))

# Channel layer: in-memory for one process; REDIS_URL lets several daphne
# processes reach each other's charge points.
REDIS_URL = envurl("REDIS_URL", "", schemes=("redis", "rediss", "unix"), example="redis://127.0.0.1:6379/0")
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
#: Certificate revocation lists (PEM, one or more) for client certificates: the TLS
#: endpoint (levity-tls:) and the profile 3 check refuse a revoked certificate, and
#: every CA of the chain needs its CRL here. Re-read when the file changes.
LEVITY_TLS_CRL = envstr("LEVITY_TLS_CRL", "")
if LEVITY_TLS_CRL:
    from cryptography import x509 as _x509

    try:
        _crl_pem = Path(LEVITY_TLS_CRL).read_bytes()
        if b"-----BEGIN X509 CRL-----" not in _crl_pem:
            raise ValueError("no PEM CRL (-----BEGIN X509 CRL-----) in it")
        for _block in _crl_pem.split(b"-----BEGIN X509 CRL-----")[1:]:
            _x509.load_pem_x509_crl(b"-----BEGIN X509 CRL-----" + _block)
    except OSError as _exc:
        raise ImproperlyConfigured(
            f"LEVITY_TLS_CRL={LEVITY_TLS_CRL!r} cannot be read: {_exc.strerror}."
        ) from None
    except ValueError as _exc:
        raise ImproperlyConfigured(f"LEVITY_TLS_CRL={LEVITY_TLS_CRL!r}: {_exc}.") from None
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
# A client has at least this many seconds to answer the server's close frame before
# its connection is dropped (its close code is lost to both sides if it is late).
LEVITY_WEBSOCKET_CLOSE_TIMEOUT = envint("LEVITY_WEBSOCKET_CLOSE_TIMEOUT", 5, minimum=1)
# /readyz answers 503 when the database or the channel layer takes longer than this.
LEVITY_READY_TIMEOUT = envfloat("LEVITY_READY_TIMEOUT", 3.0, minimum=0.1)
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
# The transaction webhook's delivery worker looks for due outbox rows at least this
# often (rows written by other server processes; its own wake it at once).
LEVITY_WEBHOOK_POLL_SECONDS = envfloat("LEVITY_WEBHOOK_POLL_SECONDS", 2.0, minimum=0.05)
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
LEVITY_API_URL = envurl(
    "LEVITY_API_URL", "http://127.0.0.1:9000", schemes=("http", "https"), example="http://127.0.0.1:9000"
).rstrip("/")
# An API request body nested deeper than this (JSON arrays/objects) is a 400 parse error.
LEVITY_API_JSON_MAX_DEPTH = envint("LEVITY_API_JSON_MAX_DEPTH", 32, minimum=1)
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
        LEVITY_CSMS_CA_KEY_PASSWORD = Path(envstr("LEVITY_CSMS_CA_KEY_PASSWORD_FILE")).read_text().strip()
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
# LEVITY_PLUGINS) turns the metrics on. The metrics port listens on loopback unless
# LEVITY_METRICS_ADDRESS says otherwise; on the main port (the charge points') /metrics
# is served only with LEVITY_METRICS_TOKEN set, to requests bearing that token.
LEVITY_METRICS_PORT = envint("LEVITY_METRICS_PORT", 0, minimum=0)
LEVITY_METRICS_ADDRESS = envstr("LEVITY_METRICS_ADDRESS", "127.0.0.1")
LEVITY_METRICS_TOKEN = envstr("LEVITY_METRICS_TOKEN", "")
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
LEVITY_HANDSHAKE_FAILURE_WINDOW_SECONDS = envfloat("LEVITY_HANDSHAKE_FAILURE_WINDOW_SECONDS", 60.0, minimum=1)
# From accept until the first HTTP request has arrived whole or the WebSocket is open
# (seconds; bytes do not extend it; 0: Twisted's idle timeout only).
LEVITY_HANDSHAKE_TIMEOUT_SECONDS = envfloat("LEVITY_HANDSHAKE_TIMEOUT_SECONDS", 10.0, minimum=0)
# Largest HTTP request body (bytes, by its declared size, before it is read; 0: no limit).
LEVITY_MAX_REQUEST_BODY_BYTES = envint("LEVITY_MAX_REQUEST_BODY_BYTES", 1024 * 1024, minimum=0)

# --- Production, HTTPS and the admin login (docs/security.md) ----------------------

# "production" refuses to start with DEBUG on, without a SECRET_KEY of its own (the
# generated .secret_key is for development) or without ALLOWED_HOSTS, and turns
# LEVITY_HTTPS on by default: `manage.py check --deploy` is then clean.
LEVITY_ENV = envstr("LEVITY_ENV", "development").strip().lower()
if LEVITY_ENV not in {"development", "production"}:
    raise ImproperlyConfigured(f"LEVITY_ENV={LEVITY_ENV!r} must be development or production.")
if LEVITY_ENV == "production":
    if DEBUG:
        raise ImproperlyConfigured("DEBUG=true is refused with LEVITY_ENV=production.")
    if not (os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE")):
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) must be set with LEVITY_ENV=production; "
            "the generated key is for development only."
        )
    if not os.environ.get("ALLOWED_HOSTS", "").strip():
        raise ImproperlyConfigured(
            "ALLOWED_HOSTS must be set with LEVITY_ENV=production (the host names of this server)."
        )
# The server is reached over HTTPS (TLS at daphne or at a proxy): cookies are sent
# over HTTPS only, HTTP is redirected to HTTPS, and browsers are told to use HTTPS (HSTS).
LEVITY_HTTPS = envbool("LEVITY_HTTPS", LEVITY_ENV == "production")
if LEVITY_HTTPS:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    SECURE_HSTS_SECONDS = envint("LEVITY_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("LEVITY_HSTS_INCLUDE_SUBDOMAINS", True)
    # Adding the domain to the browsers' preload lists is the operator's decision.
    SECURE_HSTS_PRELOAD = envbool("LEVITY_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
# Behind a proxy that terminates TLS: trust its X-Forwarded-Proto (only then).
if envbool("LEVITY_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Admin login throttling (django-axes): after this many failed logins of one
# username from one address, that pair is locked out for the cool-off period.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = envint("LEVITY_LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = envfloat("LEVITY_LOGIN_COOLOFF_MINUTES", 15.0, minimum=0.1) / 60  # hours
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no start-up banner on every manage.py command's stderr
AXES_IPWARE_PROXY_COUNT = envint("LEVITY_PROXY_COUNT", 0, minimum=0) or None
