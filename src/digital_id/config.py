"""Settings: the one table from environment variables to typed values.

Every setting is read from ``DIGITAL_ID_<NAME>`` (or an optional ``.env`` file) once, at
start-up, and passed in to whatever needs it. Nothing reads the environment elsewhere.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Published on purpose: a development passphrase is no secret, and production refuses it.
DEVELOPMENT_KEYS_PASSPHRASE = "digital-id-development-passphrase-not-secret"  # noqa: S105
DEFAULT_DATABASE_URL = "sqlite:///var/digital-id.sqlite3"
DEFAULT_ISSUER = "http://127.0.0.1:8000"
# OWASP Password Storage Cheat Sheet, argon2id minimum: 19 MiB, 2 iterations, 1 lane.
OWASP_ARGON2_MEMORY_KIB = 19_456
OWASP_ARGON2_TIME_COST = 2

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
LogFormat = Literal["json", "text"]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the setting and the fix."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIGITAL_ID_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    env: Literal["development", "production"] = "development"
    database_url: str = DEFAULT_DATABASE_URL
    # Per server worker process; see docs/deployment.md for sizing against max_connections.
    # Together they match the requests a worker runs at once (its 40 threads), so a busy
    # worker neither waits for a connection nor opens and closes one per request.
    database_pool_size: int = Field(default=20, ge=1, le=200)
    database_max_overflow: int = Field(default=20, ge=0, le=200)
    database_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    database_connect_timeout_seconds: int = Field(default=3, ge=2, le=60)
    database_statement_timeout_seconds: float = Field(default=15.0, ge=0, le=3600)
    database_pool_recycle_seconds: int = Field(default=1800, ge=60)
    database_prepared_statements: bool = True
    # Proxies whose X-Forwarded-For/-Proto `digital-id serve` believes (addresses or networks).
    forwarded_allow_ips: str = "127.0.0.1,::1"
    issuer: str = DEFAULT_ISSUER
    keys_dir: Path = Path("keys")
    keys_passphrase: SecretStr = SecretStr(DEVELOPMENT_KEYS_PASSPHRASE)
    import_batch_size: int = Field(default=20_000, ge=1, le=1_000_000)
    jwks_cache_seconds: int = Field(default=3600, ge=0)
    id_token_lifetime_seconds: int = Field(default=3600, ge=60)
    access_token_lifetime_seconds: int = Field(default=300, ge=60)
    # ES256 signs in a twentieth of RSA-3072's time; RFC 9068 asks resource servers to
    # accept RS256, not issuers to use it. ID tokens stay RS256 (OpenID Connect Core 15.1).
    access_token_algorithm: Literal["ES256", "RS256"] = "ES256"  # noqa: S105 (an algorithm)
    authorization_code_seconds: int = Field(default=60, ge=10, le=600)
    # Every client must push its authorization requests to /par (RFC 9126) first; a client's
    # registration can ask it of that client alone (require_pushed_authorization_requests).
    require_pushed_authorization_requests: bool = False
    # DPoP proofs at the token endpoint must carry a server nonce (RFC 9449 section 8): a
    # proof made in advance, or captured, is then good for minutes at most.
    dpop_nonce_required: bool = True
    # The device authorization grant (RFC 8628): how long a kiosk's codes live (a citizen
    # walks up, scans, logs in, consents), and the least interval between its polls.
    device_code_seconds: int = Field(default=600, ge=60, le=1800)
    device_poll_interval_seconds: int = Field(default=5, ge=1, le=60)
    refresh_token_idle_days: int = Field(default=14, ge=1)
    refresh_token_absolute_days: int = Field(default=30, ge=1)
    backchannel_logout_retry_seconds: float = Field(default=5.0, gt=0)
    audit_checkpoint_seconds: float = Field(default=300.0, gt=0)
    # Whether each server process group-commits the audit events of requests that changed
    # nothing else (a client_credentials token): one durable commit for all waiting at once.
    audit_group_commit: bool = True
    # How often each server process purges rows nobody needs any more (ended rate-limit
    # windows, lapsed recognised browsers, old codes); requests never do it themselves.
    housekeeping_seconds: float = Field(default=60.0, gt=0)
    session_idle_minutes: int = Field(default=30, ge=1)
    session_absolute_hours: int = Field(default=12, ge=1)
    keys_grace_seconds: int | None = Field(default=None, ge=0)
    keys_reload_seconds: float = Field(default=2.0, gt=0)
    # How stale a server's cached client registrations may be (0: checked on every request).
    clients_reload_seconds: float = Field(default=1.0, ge=0)
    pin_argon2_memory_kib: int = Field(default=OWASP_ARGON2_MEMORY_KIB, ge=8)
    pin_argon2_time_cost: int = Field(default=OWASP_ARGON2_TIME_COST, ge=1)
    lockout_threshold: int = Field(default=5, ge=1)
    lockout_seconds: int = Field(default=900, ge=1)
    # Each further lock doubles, up to this: a stranger typing a NIK from a KTP can keep it
    # locked, but not for days (the citizen's recognised browsers are exempt anyway).
    lockout_max_seconds: int = Field(default=4 * 3600, ge=1)
    # How long a browser stays recognised after its latest successful login.
    recognised_browser_days: int = Field(default=90, ge=1, le=400)
    activation_code_hours: int = Field(default=24, ge=1)
    # Rate limits: hits per window, counted in the database (0 turns one off). Per IP address
    # they are generous because a mobile carrier's NAT puts many citizens behind one address.
    rate_limit_login_per_ip: int = Field(default=300, ge=0)
    rate_limit_login_per_ip_seconds: int = Field(default=60, ge=1)
    rate_limit_login_per_nik: int = Field(default=10, ge=0)
    rate_limit_login_per_nik_seconds: int = Field(default=300, ge=1)
    rate_limit_activation_per_ip: int = Field(default=60, ge=0)
    rate_limit_activation_per_ip_seconds: int = Field(default=60, ge=1)
    rate_limit_activation_per_nik: int = Field(default=10, ge=0)
    rate_limit_activation_per_nik_seconds: int = Field(default=3600, ge=1)
    rate_limit_token_per_client: int = Field(default=6000, ge=0)
    rate_limit_token_per_client_seconds: int = Field(default=60, ge=1)
    rate_limit_client_auth_failures_per_ip: int = Field(default=60, ge=0)
    rate_limit_client_auth_failures_per_ip_seconds: int = Field(default=60, ge=1)
    rate_limit_request_objects_per_ip: int = Field(default=120, ge=0)
    rate_limit_request_objects_per_ip_seconds: int = Field(default=60, ge=1)
    # User codes typed at /device (RFC 8628 section 5.1): per address, and by everyone
    # together, so a botnet guessing the 2.56e10 codes gets as far as one address would
    # get in a day or so.
    rate_limit_user_codes_per_ip: int = Field(default=20, ge=0)
    rate_limit_user_codes_per_ip_seconds: int = Field(default=600, ge=1)
    rate_limit_user_codes_total: int = Field(default=3000, ge=0)
    rate_limit_user_codes_total_seconds: int = Field(default=60, ge=1)
    # The token path's limits (a client's tokens, failed client authentications) are counted
    # in each process and sent to the database this often; the fleet may pass what its
    # processes count in about one interval beyond a limit (digital_id.throttle.fleet).
    rate_limit_sync_seconds: float = Field(default=0.5, gt=0, le=10)
    # Calls to an agency's host (jwks_uri, sector_identifier_uri, back-channel logout): the
    # whole exchange, connect to last byte, must fit in this.
    outbound_deadline_seconds: float = Field(default=5.0, gt=0, le=60)
    # An assertion or request object naming a kid the cached JWK Set lacks refetches the
    # agency's jwks_uri at most once per client per this many seconds.
    jwks_refetch_seconds: int = Field(default=60, ge=1)

    # Prometheus metrics on a listener of their own, never the public port (what a counter
    # does right after a login must not be anyone's to watch). Loopback unless the monitoring
    # network scrapes from another host; 9464 is the port OpenTelemetry's exporter uses.
    metrics_enabled: bool = True
    # /docs, /redoc and /openapi.json: a map of every endpoint and parameter, for integrators
    # in development; off in production unless the operator chooses to publish it.
    api_docs: bool | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=1, le=65535)
    log_level: LogLevel = "INFO"
    log_format: LogFormat | None = None  # default: json in production, text in development

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_development_defaults_in_production(self) -> Settings:
        issuer = urlsplit(self.issuer)
        if issuer.scheme not in ("http", "https") or not issuer.netloc:
            raise ValueError(
                f"DIGITAL_ID_ISSUER must be an absolute http(s) URL, got {self.issuer!r}"
            )
        if issuer.query or issuer.fragment:
            raise ValueError(
                "DIGITAL_ID_ISSUER must not have a query or fragment (OpenID Connect Discovery 1.0, section 3)"
            )
        if self.env != "production":
            return self
        problems = []
        passphrase = self.keys_passphrase.get_secret_value()
        if passphrase == DEVELOPMENT_KEYS_PASSPHRASE:
            problems.append(
                "DIGITAL_ID_KEYS_PASSPHRASE is the development default; set a passphrase of your own"
            )
        elif len(passphrase) < 16:
            problems.append(
                "DIGITAL_ID_KEYS_PASSPHRASE must be at least 16 characters in production"
            )
        if issuer.scheme != "https":
            problems.append(
                f"DIGITAL_ID_ISSUER must be an https URL in production, got {self.issuer!r}"
            )
        if (
            self.pin_argon2_memory_kib < OWASP_ARGON2_MEMORY_KIB
            or self.pin_argon2_time_cost < OWASP_ARGON2_TIME_COST
        ):
            problems.append(
                "DIGITAL_ID_PIN_ARGON2_MEMORY_KIB and DIGITAL_ID_PIN_ARGON2_TIME_COST must be at least "
                f"{OWASP_ARGON2_MEMORY_KIB} and {OWASP_ARGON2_TIME_COST} in production"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def serves_api_docs(self) -> bool:
        return self.api_docs if self.api_docs is not None else not self.is_production

    @property
    def log_style(self) -> LogFormat:
        if self.log_format is not None:
            return self.log_format
        return "json" if self.is_production else "text"

    @property
    def key_grace_period(self) -> timedelta:
        """How long a retired key stays published: the longest token lifetime plus the JWKS cache."""
        if self.keys_grace_seconds is not None:
            return timedelta(seconds=self.keys_grace_seconds)
        longest = max(self.id_token_lifetime_seconds, self.access_token_lifetime_seconds)
        return timedelta(seconds=longest + self.jwks_cache_seconds)

    @property
    def signing_algorithms(self) -> tuple[str, ...]:
        """The algorithms a server signs with whatever its clients registered: RS256 (every
        OpenID provider must support it, OpenID Connect Core 15.1) and the access tokens'."""
        return tuple(dict.fromkeys(("RS256", self.access_token_algorithm)))

    @property
    def secure_cookies(self) -> bool:
        return self.issuer.startswith("https://")

    @property
    def jwks_cache_lifetime(self) -> timedelta:
        return timedelta(seconds=self.jwks_cache_seconds)

    @property
    def uses_development_passphrase(self) -> bool:
        return self.keys_passphrase.get_secret_value() == DEVELOPMENT_KEYS_PASSPHRASE


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning pydantic's multi-line report into one operator-readable line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        messages = []
        for error in exc.errors():
            location = ".".join(str(part) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            messages.append(f"DIGITAL_ID_{location.upper()}: {message}" if location else message)
        raise ConfigError("invalid configuration: " + "; ".join(messages)) from None
