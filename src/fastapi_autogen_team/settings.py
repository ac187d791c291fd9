"""The service's one settings class, read from the environment and `.env`.

Field names are the environment variables' names, so `.env.example`, the README and the
code say the same thing. Comma-separated lists are parsed explicitly (pydantic-settings
would otherwise expect JSON), and a bad value fails with the variable's name in the message.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

AgentMessages = Literal["reasoning", "content", "think", "final"]
CommaList = Annotated[tuple[str, ...], NoDecode]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=True
    )

    APP_NAME: str = "fastapi-autogen-team"
    DEFAULT_HOST: str = "127.0.0.1"
    DEFAULT_PORT: int = Field(default=4100, ge=1, le=65535)
    LOG_LEVEL: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Telemetry: OTLP over HTTP. The three endpoints default to the collector's usual paths.
    DEFAULT_OTEL_ENDPOINT: str = "http://127.0.0.1:4318"
    TRACES_ENDPOINT: str = ""
    METRICS_ENDPOINT: str = ""
    LOGS_ENDPOINT: str = ""
    OTEL_EXPORT_TIMEOUT: float = Field(default=2.0, gt=0)
    TELEMETRY_ENABLED: bool = True
    CAPTURE_CONTENT: bool = False
    AUTOGEN_RUNTIME_TRACING: bool = False
    LOG_FILE: str = "fastapi-autogen-team.log"
    HEARTBEAT_INTERVAL: float = Field(default=60.0, gt=0)
    METRICS_EXPORT_INTERVAL: int = Field(default=60_000, gt=0)

    # The model behind the agents. Without LLM_MODEL the built-in offline model answers.
    LLM_MODEL: str = ""
    LLM_BASE_URL: str = ""
    LLM_API_KEY: SecretStr = SecretStr("")
    LLM_TIMEOUT: float = Field(default=60.0, gt=0)
    LLM_MAX_RETRIES: int = Field(default=2, ge=0, le=5)
    LLM_RETRY_AFTER_MAX: float = Field(default=10.0, ge=0)
    OFFLINE_TOKEN_DELAY: float = Field(default=0.01, ge=0)

    # The chat API.
    API_KEYS: CommaList = ()
    AGENT_MESSAGES: AgentMessages = "reasoning"
    TEAMS_DIR: str = ""
    MAX_TURNS: int = Field(default=8, ge=1, le=100)
    PING_INTERVAL: float = Field(default=15.0, gt=0)

    # Limits and shutdown (per worker process).
    MAX_CONCURRENT_RUNS: int = Field(default=1000, ge=1)
    RUN_TIMEOUT: float = Field(default=300.0, gt=0)
    MAX_REQUEST_BYTES: int = Field(default=1_048_576, ge=1024)
    MAX_MESSAGES: int = Field(default=500, ge=1)
    MAX_MESSAGE_CHARS: int = Field(default=200_000, ge=1)
    SEND_TIMEOUT: float = Field(default=30.0, gt=0)
    SHUTDOWN_GRACE: float = Field(default=5.0, ge=0)
    SHUTDOWN_TIMEOUT: float = Field(default=10.0, gt=0)
    ALLOWED_ORIGINS: CommaList = ()
    ALLOW_OPEN_ACCESS: bool = False

    @field_validator("API_KEYS", "ALLOWED_ORIGINS", mode="before")
    @classmethod
    def _split_commas(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("DEFAULT_OTEL_ENDPOINT")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _default_signal_endpoints(self) -> Settings:
        for field, path in (
            ("TRACES_ENDPOINT", "/v1/traces"),
            ("METRICS_ENDPOINT", "/v1/metrics"),
            ("LOGS_ENDPOINT", "/v1/logs"),
        ):
            if not getattr(self, field):
                setattr(self, field, self.DEFAULT_OTEL_ENDPOINT + path)
        return self

    @model_validator(mode="after")
    def _grace_within_timeout(self) -> Settings:
        if self.SHUTDOWN_GRACE >= self.SHUTDOWN_TIMEOUT:
            raise ValueError("SHUTDOWN_GRACE must be shorter than SHUTDOWN_TIMEOUT")
        return self

    @property
    def offline(self) -> bool:
        return not self.LLM_MODEL


def describe_error(error: ValidationError) -> str:
    """One line per bad variable, naming it, for a start-up failure people can act on."""
    lines = ["Invalid settings (environment or .env):"]
    for problem in error.errors():
        variable = ".".join(str(part) for part in problem["loc"]) or "settings"
        lines.append(f"  {variable}: {problem['msg']}")
    return "\n".join(lines)
