"""CRM Steward settings: one file, every value read from the environment.

Each variable is documented in README.md ("Configuration"). A value that cannot be
parsed stops the process at start with a message naming the variable, instead of
silently falling back to a default.
"""

from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env file is convenient for development; real deployments set the environment.
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _bool(name: str, default: bool) -> bool:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off."
    )


def _int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} must be at least {minimum}.")
    return value


def _list(name: str, default: list[str]) -> list[str]:
    raw = env.str(name, default=None)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def _url(name: str, schemes: set[str]) -> str | None:
    raw = env.str(name, default=None)
    if raw is None or not raw.strip():
        return None
    parts = urlsplit(raw.strip())
    if parts.scheme not in schemes or not (parts.hostname or parts.path.strip("/")):
        allowed = ", ".join(sorted(f"{scheme}://" for scheme in schemes))
        raise ImproperlyConfigured(
            f"{name} is not a valid URL: expected {allowed}<host>[:port]/<name>, "
            f"got scheme {parts.scheme!r}."
        )
    return raw.strip()


DEBUG = _bool("DEBUG", False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off; set SECRET_KEY (or DEBUG=true for "
            "local development only)."
        )
    SECRET_KEY = "insecure-development-key-used-only-with-DEBUG-on"

ALLOWED_HOSTS = _list("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = _list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # the Swagger UI and ReDoc files, served locally (no CDN)
    "simple_history",
    "governance",
    "integrations",
    "integrations.sandbox",
    "crm_agents",
    "audit",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Serves /static/ from STATIC_ROOT in every process, so no separate web server is needed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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

# --- Database -------------------------------------------------------------------------
# SQLite by default (one file under var/); DATABASE_URL switches to PostgreSQL (psycopg 3).
DATABASE_URL = _url("DATABASE_URL", {"postgres", "postgresql", "pgsql", "sqlite"})
if DATABASE_URL:
    DATABASES = {"default": env.db_url_config(DATABASE_URL)}
else:
    (BASE_DIR / "var").mkdir(exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": BASE_DIR / "var" / "db.sqlite3",
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the sandbox and a worker may share one SQLite file: WAL lets
    # readers run beside a writer, IMMEDIATE takes the write lock up front so two
    # writers queue (up to `timeout` seconds) instead of failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = _int("DB_CONN_MAX_AGE", 0)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` fills it; a relative path is taken from the project directory.
STATIC_ROOT = BASE_DIR / (env.str("STATIC_ROOT", default="").strip() or "staticfiles")
# Compressed (gzip) copies made by collectstatic, served by whitenoise. Not the manifest
# (hashed names) storage: that one makes every {% static %} fail until collectstatic has run,
# which the test suite (DEBUG off) never does, and a release that forgot it would break every
# admin page. Unhashed names cost a revalidation after whitenoise's 60 s cache lifetime.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

LOGIN_URL = "admin:login"

# --- Security (effective when DEBUG is off) -------------------------------------------
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = _bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
# Behind a proxy that ends TLS, requests arrive as plain HTTP: trust its X-Forwarded-Proto so
# links the app builds (API URLs, OAuth redirect URIs) say https. Only set it when the proxy
# always sets (or strips) that header, or a client could claim https itself.
if _bool("BEHIND_TLS_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True

# --- REST API ---------------------------------------------------------------------------
# The largest request body: a 4-hour call's transcript is ~48,000 words (200 a minute), under
# 2 MB even with every character \u-escaped; 8 MiB leaves a wide margin. Over it, the API
# answers 413 in JSON (crm_agents/api/errors.py).
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

# Machines send `Authorization: Api-Key <key>` (a workspace key) or `Token <token>` (a
# person's); people browsing the API use their admin session. Never a password: HTTP Basic
# gets a 401 saying so. The first class names the scheme in 401 answers' WWW-Authenticate
# header.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "crm_agents.api.authentication.ApiKeyAuthentication",
        "crm_agents.api.authentication.ApiTokenAuthentication",
        "crm_agents.api.authentication.PasswordRefusal",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["crm_agents.api.parsers.ApiJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "crm_agents.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "crm_agents.api.errors.api_exception_handler",
    # Failed authentications allowed per client address and per key prefix, then 429.
    "DEFAULT_THROTTLE_RATES": {"auth_failure": "10/min"},
    "DEFAULT_SCHEMA_CLASS": "crm_agents.api.schema.ApiAutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "CRM Steward API",
    "DESCRIPTION": "Calls in; runs, proposed CRM changes and review decisions out.",
    "VERSION": "1",
    # 3.1: the call payload's schema comes from pydantic, which writes nullable values
    # as JSON Schema does (`{"type": "null"}`), valid in OpenAPI 3.1 only.
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its UIs are for signed-in callers, like the rest of the API.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The ways in the schema offers (PasswordRefusal is a way out).
    "AUTHENTICATION_WHITELIST": [
        "crm_agents.api.authentication.ApiKeyAuthentication",
        "crm_agents.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "crm_agents.models.RunStatus",
        "ChangeSetStatusEnum": "governance.review_models.SetStatus",
        "ProposalStatusEnum": "governance.review_models.ProposalStatus",
        "ReviewModeEnum": "governance.models.ReviewMode",
        "ChatRoleEnum": "crm_agents.chat_models.ChatRole",
        "ChatErrorKindEnum": "crm_agents.chat.activity.ErrorKind",
    },
}

# --- Celery -----------------------------------------------------------------------------
# REDIS_URL set: Redis is the broker and result store, and tasks run in worker processes.
# Unset: tasks run eagerly in the calling process (demo, single-process use, tests).
REDIS_URL = _url("REDIS_URL", {"redis", "rediss", "unix"})
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
    # One cache for every process: failed-authentication counters must count across web
    # workers, and CRM metadata is shared by the workers.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "crm-steward",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CELERY_BROKER_URL = "memory://"
    CELERY_RESULT_BACKEND = "cache+memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# A task is acknowledged only after it finishes, so a worker crash redelivers it; every
# task must therefore be idempotent (DESIGN.md invariant 4).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = _int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=1)
CELERY_TASK_TIME_LIMIT = _int("CELERY_TASK_TIME_LIMIT", 300, minimum=1)
if CELERY_TASK_TIME_LIMIT <= CELERY_TASK_SOFT_TIME_LIMIT:
    raise ImproperlyConfigured(
        "CELERY_TASK_TIME_LIMIT must be greater than CELERY_TASK_SOFT_TIME_LIMIT, so a "
        "task gets its soft-limit exception before it is killed."
    )
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Sending a message gives up fast when the broker is down: what was accepted is already in
# the database, and the reconciler sends it later (DESIGN.md invariant 9).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}

# Queues: runs (the pipeline) and apply (writes) are served by separate workers, so an
# approved change never waits behind a backlog of calls; reconcile is taken by whichever
# worker is free. Procfile starts one worker per queue.
CELERY_TASK_DEFAULT_QUEUE = "runs"
CELERY_TASK_ROUTES = {
    "crm_agents.process_call": {"queue": "runs"},
    "crm_agents.run_workflow": {"queue": "runs"},
    "crm_agents.apply_change_set": {"queue": "apply"},
    "crm_agents.reconcile": {"queue": "reconcile"},
}

# --- Owed work: leases, retries, the reconciler -----------------------------------------
# A worker holds a run or an apply for at most WORK_LEASE_SECONDS; after that (or when the
# same task is delivered again, which means its first worker died) another one takes over
# and settles it from the facts. It must exceed the hard task time limit.
WORK_LEASE_SECONDS = _int("WORK_LEASE_SECONDS", CELERY_TASK_TIME_LIMIT + 60, minimum=1)
if WORK_LEASE_SECONDS <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        "WORK_LEASE_SECONDS must be greater than CELERY_TASK_TIME_LIMIT, so no claim expires "
        "while its task may still be running."
    )
# Owed work with no progress for this long has lost its message (an emptied queue, a
# broker that was down when it was accepted): the reconciler sends it again.
REQUEUE_AFTER_SECONDS = _int("REQUEUE_AFTER_SECONDS", 300, minimum=1)
# How often Celery beat runs the reconciler (`manage.py reconcile` runs it once).
RECONCILE_EVERY_SECONDS = _int("RECONCILE_EVERY_SECONDS", 60, minimum=1)
# Retries of a transient CRM or model failure: the task retries itself this many times with
# a growing back-off (RETRY_BASE_SECONDS doubling, capped at RETRY_MAX_DELAY_SECONDS); then
# the reconciler keeps trying, the back-off still growing, until CRM_OUTAGE_LIMIT_SECONDS
# after the first failure, when the item fails with its reason.
TASK_MAX_RETRIES = _int("TASK_MAX_RETRIES", 6)
RETRY_BASE_SECONDS = _int("RETRY_BASE_SECONDS", 2, minimum=1)
RETRY_MAX_DELAY_SECONDS = _int("RETRY_MAX_DELAY_SECONDS", 1800, minimum=1)
CRM_OUTAGE_LIMIT_SECONDS = _int("CRM_OUTAGE_LIMIT_SECONDS", 24 * 3600, minimum=1)
# Redis hands an unacknowledged message to another worker after this long; above the task
# time limit and the longest retry countdown a task schedules itself (RETRY_TASK_COUNTDOWN_CAP),
# so a message is never redelivered while its task may still be running or waiting.
RETRY_TASK_COUNTDOWN_CAP = 300
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": max(WORK_LEASE_SECONDS, RETRY_TASK_COUNTDOWN_CAP) + 60,
    "socket_connect_timeout": 3,
    "socket_timeout": 10,
}
CELERY_BEAT_SCHEDULE: dict = {
    "reconcile": {
        "task": "crm_agents.reconcile",
        "schedule": float(RECONCILE_EVERY_SECONDS),
        # A pass nobody took in time is dropped: the next one does the same work.
        "options": {"expires": float(RECONCILE_EVERY_SECONDS)},
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(BASE_DIR / "var" / "celerybeat-schedule")
)
if REDIS_URL:  # beat runs only with a broker; it cannot create the schedule's folder itself
    Path(CELERY_BEAT_SCHEDULE_FILENAME).parent.mkdir(parents=True, exist_ok=True)

# --- Sandbox ------------------------------------------------------------------------------
# Where the local HubSpot / Salesforce / OpenAI emulators are served (`manage.py runsandbox`).
SANDBOX_URL = (_url("SANDBOX_URL", {"http", "https"}) or "http://127.0.0.1:8100").rstrip("/")
# Off: the sandbox's models leave the admin and `runsandbox` refuses to start (its tables
# stay, so migrations still apply). On by default because the CRM and model URLs below
# default to the sandbox; the production Procfile runs the web process with it off.
SANDBOX_ENABLED = _bool("SANDBOX_ENABLED", True)

# --- CRM connections ------------------------------------------------------------------------
# This site's own address, for links in messages ("connect HubSpot at …") and OAuth redirects.
SITE_URL = (_url("SITE_URL", {"http", "https"}) or "http://127.0.0.1:8000").rstrip("/")
# Secrets that encrypt stored CRM credentials; the first encrypts, all decrypt (rotation).
FIELD_ENCRYPTION_KEYS = _list("FIELD_ENCRYPTION_KEYS", []) or [SECRET_KEY]
# Secrets that key the audit chain's HMAC; the first signs new events, all verify (rotation).
# Each is stretched into its own MAC key (audit/models.py), so the SECRET_KEY default works
# but ties the audit trail to SECRET_KEY: production sets its own.
AUDIT_KEYS = _list("AUDIT_KEYS", []) or [SECRET_KEY]
# OAuth apps and endpoints. The defaults point at the sandbox; for the real CRMs set
# HUBSPOT_API_URL=https://api.hubapi.com, HUBSPOT_AUTHORIZE_URL=
# https://app.hubspot.com/oauth/authorize and SALESFORCE_LOGIN_URL=https://login.salesforce.com.
HUBSPOT_CLIENT_ID = env.str("HUBSPOT_CLIENT_ID", default="crm-steward-sandbox")
HUBSPOT_CLIENT_SECRET = env.str("HUBSPOT_CLIENT_SECRET", default="sandbox-secret")
HUBSPOT_API_URL = (_url("HUBSPOT_API_URL", {"http", "https"}) or SANDBOX_URL).rstrip("/")
HUBSPOT_AUTHORIZE_URL = _url("HUBSPOT_AUTHORIZE_URL", {"http", "https"}) or (
    f"{SANDBOX_URL}/oauth/authorize"
)
HUBSPOT_SCOPES = env.str(
    "HUBSPOT_SCOPES",
    default="oauth crm.objects.contacts.read crm.objects.contacts.write "
    "crm.objects.companies.read crm.objects.companies.write crm.objects.deals.read "
    "crm.objects.deals.write crm.objects.owners.read crm.schemas.deals.read",
)
SALESFORCE_CLIENT_ID = env.str("SALESFORCE_CLIENT_ID", default="crm-steward-sandbox")
SALESFORCE_CLIENT_SECRET = env.str("SALESFORCE_CLIENT_SECRET", default="sandbox-secret")
SALESFORCE_LOGIN_URL = (_url("SALESFORCE_LOGIN_URL", {"http", "https"}) or SANDBOX_URL).rstrip("/")
# Refresh an OAuth token this many seconds before it expires.
CRM_TOKEN_REFRESH_MARGIN = _int("CRM_TOKEN_REFRESH_MARGIN", 120)
CRM_TIMEOUT = _int("CRM_TIMEOUT", 30, minimum=1)
# Per-CRM-account request limits shared by every worker through Redis (integrations/
# throttle.py); 0 switches one off. HubSpot's Free/Starter burst is 100 per rolling 10 s and
# search 5 per second. Salesforce has daily limits only: its per-second limit is our smoothing.
CRM_HUBSPOT_BURST = _int("CRM_HUBSPOT_BURST", 100)
CRM_HUBSPOT_SEARCH_PER_SECOND = _int("CRM_HUBSPOT_SEARCH_PER_SECOND", 5)
CRM_SALESFORCE_PER_SECOND = _int("CRM_SALESFORCE_PER_SECOND", 25)
# Longest a call waits for a slot before it raises RateLimited (a task then retries later).
CRM_THROTTLE_MAX_WAIT = _int("CRM_THROTTLE_MAX_WAIT", 10)

# --- Model -------------------------------------------------------------------------------
# Any OpenAI-compatible Chat Completions endpoint with structured outputs. The defaults are
# the sandbox's rule-based model (seeded by `manage.py sandbox_seed`), so the demo runs
# offline. An empty MODEL_API_KEY means no model is configured: extraction then fails with a
# clear error instead of guessing.
MODEL_BASE_URL = (
    _url("MODEL_BASE_URL", {"http", "https"}) or f"{SANDBOX_URL}/sandbox/openai/v1"
).rstrip("/")
MODEL_API_KEY = env.str("MODEL_API_KEY", default="sk-sandbox-rules").strip()
MODEL_NAME = env.str("MODEL_NAME", default="sandbox-rules-1").strip()
if not MODEL_NAME:
    raise ImproperlyConfigured("MODEL_NAME is empty; name the model, e.g. gpt-4o-2024-08-06.")
MODEL_TIMEOUT = _int("MODEL_TIMEOUT", 30, minimum=1)

# --- Chat ---------------------------------------------------------------------------------
# Model calls one chat turn may make before the agent stops it (a model that never stops
# calling tools is cut off here, and the rep is told).
CHAT_MAX_STEPS = _int("CHAT_MAX_STEPS", 6, minimum=1)
# Live messages of a session the model is shown; older turns are compacted into a summary
# (the records the conversation is about are kept either way).
CHAT_CONTEXT_MESSAGES = _int("CHAT_CONTEXT_MESSAGES", 40, minimum=4)

# --- The agent ----------------------------------------------------------------------------
# A record the numbers do not clearly single out is used only when this sure (0 to 1);
# below it, a human chooses. In percent so the env helper stays an integer one.
MATCH_CONFIDENCE_BAR = _int("MATCH_CONFIDENCE_PERCENT", 60, minimum=0) / 100
if MATCH_CONFIDENCE_BAR > 1:
    raise ImproperlyConfigured("MATCH_CONFIDENCE_PERCENT must be between 0 and 100.")
# A call's runs share one match per CRM and object type (crm_agents/call_matches.py). The
# records' values it read are reused while younger than this; an older read is read again
# (the apply's write is conditional on what was read in any case).
CALL_MATCH_FRESH_SECONDS = _int("CALL_MATCH_FRESH_SECONDS", 120, minimum=0)
# A run whose match another worker is computing waits this long for it before going back
# to the queue (the other worker's claim lasts WORK_LEASE_SECONDS if it died).
CALL_MATCH_WAIT_SECONDS = _int("CALL_MATCH_WAIT_SECONDS", 30, minimum=0)

# --- Metrics ------------------------------------------------------------------------------
# Bearer token a Prometheus scraper sends to /metrics; empty: only logged-in superusers.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="").strip()

# --- Logging ------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL={LOG_LEVEL!r} is not one of DEBUG, INFO, WARNING, ERROR, CRITICAL."
    )
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
