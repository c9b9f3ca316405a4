"""Settings: one validated object read from BOTGPT_* environment variables and .env."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from botgpt.files import write_private

WEAK_SECRETS = {"changeme", "change-me", "secret", "dev", "development", "password", "test"}
GROQ_BASE_URL = "https://api.groq.com/openai/v1"
GROQ_DEFAULT_MODEL = "llama-3.1-8b-instant"
# Settings that also answer to the name every platform (Heroku, Render, Compose files, the
# providers' own SDKs) uses; the BOTGPT_ name wins when both are set.
CONVENTIONAL_NAMES = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}
PROVIDER_KEY_NAMES = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "groq": "GROQ_API_KEY",
}


# --- LLM fallback chain (resilience, docs/architecture.md: generation) -------------------
class LLMFallback(BaseModel):
    """One entry of BOTGPT_LLM_FALLBACKS: a provider tried when the ones before it fail.

    `provider` is openai (any OpenAI-compatible API: OpenAI, Groq, Ollama, vLLM),
    anthropic, or local (the embedded model: only `model`, its display name, and
    `name` apply). An empty `base_url` or `model` takes the provider's default;
    `name` labels the provider in logs and on stored messages (default: `provider`).
    """

    model_config = ConfigDict(extra="forbid")

    provider: Literal["openai", "anthropic", "local"]
    base_url: str = ""
    api_key: SecretStr | None = None
    model: str = ""
    name: str = ""

    @model_validator(mode="after")
    def _check_key(self) -> LLMFallback:
        if self.provider == "anthropic" and self.api_key is None:
            raise ValueError("an anthropic entry of BOTGPT_LLM_FALLBACKS needs an api_key")
        return self


# --- end LLM fallback chain ---------------------------------------------------------


class Settings(BaseSettings):
    """Every tunable of the service; invalid values stop the start with the variable's name."""

    model_config = SettingsConfigDict(
        env_prefix="BOTGPT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
    )

    environment: Literal["development", "production", "test"] = "development"
    data_dir: Path = Path("./data")
    database_url: str = Field(
        "", validation_alias=AliasChoices("BOTGPT_DATABASE_URL", "DATABASE_URL")
    )
    db_pool_size: int = Field(10, ge=1, le=200)
    # redis://host:port/db: rate limits, jobs, revocations and live replies shared by processes
    redis_url: str = Field("", validation_alias=AliasChoices("BOTGPT_REDIS_URL", "REDIS_URL"))
    # Rate limits ("N/second|minute|hour|day", ";"-separated; empty turns a group off).
    # Chat turns (REST, WebSocket, /v1/chat/completions) count per acting user; sign-in,
    # registration and token refresh count per client address.
    rate_limit_chat: str = "60/minute;1000/hour;10000/day"
    rate_limit_auth: str = "20/minute;200/hour"
    # Bots' public chat, per client address and bot (each bot adds its own session/day caps).
    rate_limit_public: str = "20/minute;300/hour"
    # Moderation of user messages: off, blocklist (offline: the words below) or openai (any
    # OpenAI-compatible /moderations endpoint).
    moderation: Literal["off", "blocklist", "openai"] = "off"
    moderation_blocklist: list[str] = []
    moderation_base_url: str = "https://api.openai.com/v1"
    moderation_api_key: SecretStr | None = None
    moderation_model: str = "omni-moderation-latest"
    moderation_fail_closed: bool = False  # True: refuse turns while moderation is down

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Serving processes of `botgpt serve` (uvicorn workers); more than one needs PostgreSQL
    # and Redis, which every process shares.
    workers: int = Field(1, ge=1, le=64)
    log_level: str = "INFO"
    log_json: bool = True
    cors_origins: list[str] = []
    hsts_seconds: int = Field(0, ge=0)  # Strict-Transport-Security max-age; set behind HTTPS
    metrics_token: SecretStr | None = None  # when set, GET /metrics needs "Bearer <token>"

    jwt_secret: SecretStr | None = None
    # Fernet key(s) for secrets at rest (bots' provider keys): "new,old" while rotating.
    encryption_key: SecretStr | None = None
    access_token_minutes: int = Field(15, ge=1, le=24 * 60)
    refresh_token_days: int = Field(30, ge=1, le=365)
    api_key_cache_seconds: float = Field(30.0, ge=0)

    llm_provider: Literal["local", "openai", "anthropic", "groq", "fake"] = "local"
    # The fake provider (benchmarks): wait before the first piece, and between pieces.
    llm_fake_latency_seconds: float = Field(0.0, ge=0, le=60)
    llm_fake_token_interval_seconds: float = Field(0.0, ge=0, le=10)
    llm_base_url: str = Field("", description="Empty: the provider's public endpoint.")
    llm_api_key: SecretStr | None = None
    # The providers' conventional key variables, used when BOTGPT_LLM_API_KEY is not set.
    openai_api_key: SecretStr | None = Field(None, validation_alias="OPENAI_API_KEY")
    anthropic_api_key: SecretStr | None = Field(None, validation_alias="ANTHROPIC_API_KEY")
    groq_api_key: SecretStr | None = Field(None, validation_alias="GROQ_API_KEY")
    llm_model: str = ""
    llm_max_tokens: int = Field(512, ge=1)
    # The embedded model (provider `local`): any chat GGUF the operator provides, run with its
    # own chat template; prompt processing on every core, decoding on fewer (llama.cpp's
    # batch and decode thread counts; empty: all cores / half of them).
    local_model_path: Path | None = None
    local_context_tokens: int = Field(2048, ge=256, le=131072)
    local_threads: int | None = Field(None, ge=1, le=256)
    local_batch_threads: int | None = Field(None, ge=1, le=256)
    llm_temperature: float = Field(0.7, ge=0, le=2)
    llm_timeout_seconds: float = Field(60.0, gt=0)
    llm_connect_timeout_seconds: float = Field(5.0, gt=0)
    llm_max_connections: int = Field(
        1000, ge=1, description="Concurrent upstream connections per provider (one per stream)."
    )
    llm_retry_attempts: int = Field(3, ge=1, le=10)
    llm_retry_base_seconds: float = Field(0.5, ge=0)
    llm_retry_max_seconds: float = Field(20.0, ge=0)
    # --- LLM resilience ---------------------------------
    # llm_timeout_seconds is the total timeout and llm_connect_timeout_seconds the
    # connect timeout of a call; these add the first-token timeout, the fallback
    # chain (JSON list of LLMFallback) and the per-provider circuit breaker.
    llm_fallbacks: list[LLMFallback] = Field(
        default_factory=list,
        description="Providers tried in order when the primary fails before any text (JSON).",
    )
    llm_first_token_timeout_seconds: float = Field(30.0, gt=0)
    llm_breaker_failures: int = Field(5, ge=1, le=1000)
    llm_breaker_reset_seconds: float = Field(30.0, gt=0)
    # --- end LLM resilience ------------------------------------------------------------
    default_system_prompt: str = (
        "You are BOT GPT, a helpful, accurate assistant. Answer clearly and concisely."
    )
    context_max_tokens: int = Field(
        4000, ge=256, description="Trim history above this many prompt tokens (the seeds' rule)."
    )
    reply_reserve_tokens: int = Field(512, ge=16)
    history_max_messages: int = Field(50, ge=2, le=1000)
    llm_prices: dict[str, tuple[float, float]] = Field(
        default_factory=dict,
        description="USD per million (input, output) tokens by model name, as JSON.",
    )
    llm_titles: bool = Field(True, description="Let the model write a title after the first turn.")
    answer_cache: bool = Field(
        False, description="Answer a repeated first question from the cache (no tokens)."
    )
    answer_cache_seconds: int = Field(86_400, ge=60, le=30 * 86_400)
    stream_flush_seconds: float = Field(
        1.0, gt=0, description="Persist partial replies this often."
    )
    stream_reattach_grace_seconds: float = Field(
        0.0, ge=0, description="How long a stream with no client keeps generating."
    )
    stream_lease_seconds: float = Field(
        30.0,
        ge=1,
        description="A reply whose process stopped renewing its lease this long ends interrupted.",
    )
    grounded_top_k: int = Field(5, ge=1, le=20, description="Passages given to grounded turns.")
    grounded_not_found_message: str = (
        "I could not find this in your documents, so I cannot answer it from them."
    )
    # What a reader sees of a grounded answer the sources do not back (issue 15): `annotate`
    # marks unsupported sentences, `strict` drops them (quoting the sources when nothing is
    # left), `off` skips the check; `auto` is strict for the shipped tiny model, else annotate.
    grounded_support_policy: Literal["auto", "annotate", "strict", "off"] = "auto"
    title_max_chars: int = Field(60, ge=10, le=200)

    admin_email: str = "admin@botgpt.local"
    webhooks_allow_private: bool = False  # let webhooks reach loopback/private addresses

    @field_validator("database_url")
    @classmethod
    def _check_db_url(cls, v: str) -> str:
        return normalise_database_url(v)

    @field_validator("rate_limit_chat", "rate_limit_auth", "rate_limit_public")
    @classmethod
    def _check_limits(cls, v: str) -> str:
        from limits import parse_many

        if v.strip():
            try:
                parse_many(v)
            except ValueError as e:
                raise ValueError(
                    f"{v!r} is not a rate limit list such as '60/minute;1000/hour'"
                ) from e
        return v.strip()

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, v: str) -> str:
        if v and not v.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("BOTGPT_REDIS_URL must start with redis://, rediss:// or unix://")
        return v

    @field_validator("jwt_secret")
    @classmethod
    def _check_secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        raw = v.get_secret_value()
        if raw.lower() in WEAK_SECRETS or len(raw) < 32:
            raise ValueError("BOTGPT_JWT_SECRET must be at least 32 random characters")
        return v

    @field_validator("encryption_key")
    @classmethod
    def _check_encryption_key(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return v
        from cryptography.fernet import Fernet

        for key in (k.strip() for k in v.get_secret_value().split(",")):
            try:
                Fernet(key.encode())
            except ValueError as e:
                raise ValueError(
                    "BOTGPT_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes), "
                    "comma-separated; `botgpt keys new` makes one"
                ) from e
        return v

    def encryption_keys(self) -> list[str]:
        """The keys secrets at rest are encrypted with (the first) and read with (all)."""
        from botgpt.bots.secrets import configured_keys

        raw = self.encryption_key.get_secret_value() if self.encryption_key else ""
        return configured_keys(raw, self.data_dir)

    @model_validator(mode="after")
    def _check_provider(self) -> Settings:
        if self.llm_api_key is None and self.llm_provider in PROVIDER_KEY_NAMES:
            self.llm_api_key = getattr(self, f"{self.llm_provider}_api_key")
        if self.llm_provider == "groq":
            self.llm_base_url = self.llm_base_url or GROQ_BASE_URL
            self.llm_model = self.llm_model or GROQ_DEFAULT_MODEL
        if self.llm_provider == "anthropic" and self.llm_api_key is None:
            raise ValueError(
                "BOTGPT_LLM_API_KEY (or ANTHROPIC_API_KEY) is required when "
                "BOTGPT_LLM_PROVIDER=anthropic"
            )
        if self.environment == "production" and self.jwt_secret is None:
            raise ValueError("BOTGPT_JWT_SECRET must be set in production")
        return self

    @property
    def support_policy(self) -> Literal["annotate", "strict", "off"]:
        """The grounded support policy, `auto` resolved for the configured model."""
        if self.grounded_support_policy != "auto":
            return self.grounded_support_policy
        tiny = self.llm_provider == "local" and self.local_model_path is None
        return "strict" if tiny else "annotate"

    @cached_property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in the data folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'botgpt.db').resolve()}"

    def jwt_key(self) -> str:
        """The JWT signing key: from settings, else generated once and kept in the data folder."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = self.data_dir / "jwt_secret"
        if path.exists():
            return path.read_text().strip()
        key = secrets.token_urlsafe(48)
        try:
            write_private(path, key)  # 0600 from its first byte, in a 0700 folder
        except FileExistsError:  # another process generated it first
            return path.read_text().strip()
        return key

    # --- documents and retrieval ---------------------------------
    # Upload limit, chunking, the embedder (local MiniLM, any OpenAI-compatible embeddings
    # API, or the hash test double), hybrid-search fusion and the grounded relevance floor.
    # Fusion defaults are botgpt.retrieval.search.SearchParams' (tuned on SciFact train).
    max_upload_mb: float = Field(25.0, gt=0, le=2048)
    # --- hostile input (issue 8): request bodies and parsing limits ---------------------
    # Every request body but an upload's (which has max_upload_mb) is refused with 413 above
    # max_body_mb, counted while it is read (also without Content-Length). Parsing runs in a
    # child process that is killed past its time budget or memory, or when its document is
    # deleted; archives (DOCX) are checked for size and compression ratio before parsing.
    max_body_mb: float = Field(1.0, gt=0, le=1024)
    parse_timeout_seconds: float = Field(120.0, gt=0)
    parse_max_memory_mb: int = Field(1024, ge=128, le=65536)
    parse_max_pages: int = Field(2000, ge=1)
    parse_max_paragraphs: int = Field(200_000, ge=1)
    parse_max_chars: int = Field(10_000_000, ge=1000)
    parse_max_unpacked_mb: float = Field(100.0, gt=0)
    parse_max_compression_ratio: float = Field(100.0, ge=1)
    parse_max_html_depth: int = Field(512, ge=8)
    # --- end hostile input ----------------------------------------------------------------
    # Where uploaded originals live: the data folder, or an S3-compatible bucket.
    blob_store: Literal["local", "s3"] = "local"
    s3_endpoint_url: str = "https://s3.amazonaws.com"
    s3_bucket: str = ""
    s3_region: str = ""
    s3_access_key: SecretStr | None = None
    s3_secret_key: SecretStr | None = None
    s3_prefix: str = ""
    # Where chunk vectors are searched: the database's own index (sqlite-vec / pgvector), or
    # a Qdrant collection (rows and the keyword index stay in the database either way).
    vector_store: Literal["database", "qdrant"] = "database"
    qdrant_url: str = Field(
        "", description="http(s)://host:6333 of a Qdrant server, or ':memory:' (embedded)."
    )
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path | None = Field(None, description="Embedded Qdrant in this folder.")
    qdrant_collection: str = Field("botgpt_chunks", pattern=r"^[A-Za-z0-9_-]{1,200}$")
    qdrant_timeout_seconds: int = Field(10, ge=1, le=600)
    chunk_tokens: int = Field(256, ge=16, le=8192)
    chunk_overlap: int = Field(32, ge=0, le=4096)
    embedding_provider: Literal["local", "openai", "hash"] = "local"
    embedding_model: str = Field("", description="Empty: the provider's default model.")
    embedding_base_url: str = "https://api.openai.com/v1"
    embedding_api_key: SecretStr | None = None
    embedding_dimension: int = Field(384, ge=8, le=4096)
    # Chunks of one document per embedding request (and per progress step of a long one).
    embedding_batch_size: int = Field(16, ge=1, le=512)
    # Threads of the local embedding model; 0: the cores this process may use.
    embedding_threads: int = Field(0, ge=0, le=256)
    # Nice value of the local model's threads (Linux): above 0, chat turns and other requests
    # get the cores first and ingestion uses what they leave; 0: same priority as requests.
    embedding_nice: int = Field(10, ge=0, le=19)
    # Documents ingested at once per process (jobs run concurrently): their chunks are merged
    # into one model call of up to ingest_batch_chunks texts, sorted by length (little padding).
    ingest_workers: int = Field(64, ge=1, le=256)
    ingest_batch_chunks: int = Field(128, ge=1, le=4096)
    query_embedding_cache_size: int = Field(
        10_000, ge=0, le=1_000_000, description="Query vectors kept (0: off); Redis shares them."
    )
    # With BOTGPT_REDIS_URL, jobs go to a Redis stream; `serve` runs them too unless this is
    # false (then only `botgpt worker` processes do).
    jobs_in_server: bool = True
    # k=1 was best on SciFact train (bench/scifact.py): the top ranks of each list dominate.
    rrf_k: float = Field(1.0, gt=0)
    hybrid_keyword_weight: float = Field(1.0, ge=0)
    hybrid_vector_weight: float = Field(1.0, ge=0)
    search_min_score: float = Field(
        0.25, ge=-1, le=1, description="Grounded answers ignore passages below this cosine."
    )

    @model_validator(mode="after")
    def _check_blob_store(self) -> Settings:
        if self.blob_store == "s3" and not self.s3_bucket:
            raise ValueError("BOTGPT_S3_BUCKET is required when BOTGPT_BLOB_STORE=s3")
        return self

    @model_validator(mode="after")
    def _check_vector_store(self) -> Settings:
        if self.vector_store == "qdrant" and not (self.qdrant_url or self.qdrant_path):
            raise ValueError(
                "BOTGPT_QDRANT_URL (or BOTGPT_QDRANT_PATH) is required when "
                "BOTGPT_VECTOR_STORE=qdrant"
            )
        in_memory = self.qdrant_url == ":memory:" and not self.qdrant_path
        if self.vector_store == "qdrant" and in_memory and self.environment == "production":
            raise ValueError(
                "BOTGPT_QDRANT_URL=:memory: loses every vector at each restart: use a "
                "Qdrant server in production"
            )
        return self

    @model_validator(mode="after")
    def _check_chunking(self) -> Settings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("BOTGPT_CHUNK_OVERLAP must be smaller than BOTGPT_CHUNK_TOKENS")
        return self

    # --- end documents and retrieval ---------------------------------------------------


def normalise_database_url(url: str) -> str:
    """The async-driver form of a database URL, or ValueError naming what is accepted.

    Platforms hand out ``postgres://`` or ``postgresql://`` URLs, often with libpq's
    ``sslmode``; asyncpg needs ``postgresql+asyncpg://`` and calls the option ``ssl``.
    """
    if not url:
        return url
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            url = "postgresql+asyncpg://" + url[len(plain) :]
            url = url.replace("sslmode=", "ssl=")
    if not url.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
        raise ValueError(
            "BOTGPT_DATABASE_URL (or DATABASE_URL) must start with sqlite+aiosqlite://, "
            "postgresql+asyncpg://, postgresql:// or postgres://"
        )
    return url


def setting_sources(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """Where each set setting came from, for the start-up log; never the values.

    A source is an environment variable's name, `.env NAME`, or `derived` (filled in from
    another setting, e.g. Groq's endpoint, or passed to the constructor).
    """
    import os

    env = {k.upper(): v for k, v in (os.environ if environ is None else environ).items()}
    dotenv = _dotenv_names(settings)
    sources: dict[str, str] = {}
    for name in sorted(settings.model_fields_set):
        candidates = [f"BOTGPT_{name.upper()}"]
        if name in CONVENTIONAL_NAMES:
            candidates.append(CONVENTIONAL_NAMES[name])
        if name == "llm_api_key" and settings.llm_provider in PROVIDER_KEY_NAMES:
            candidates.append(PROVIDER_KEY_NAMES[settings.llm_provider])
        alias = type(settings).model_fields[name].validation_alias
        if isinstance(alias, str):
            candidates = [alias]
        found = next((c for c in candidates if c in env), None)
        if found is None:
            found = next((f".env {c}" for c in candidates if c in dotenv), "derived")
        sources[name] = found
    return sources


def _dotenv_names(settings: Settings) -> set[str]:
    env_file = settings.model_config.get("env_file")
    if not isinstance(env_file, str | Path) or not Path(env_file).is_file():
        return set()
    from dotenv import dotenv_values

    return {k.upper() for k in dotenv_values(env_file)}
