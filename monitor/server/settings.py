"""Daemon settings: defaults < config file (YAML or TOML) < ``SAEGUARD_*`` env vars < flags.

``load_settings(config_file, **flags)`` builds them; flags that are None are ignored. A
misspelt key in the config file is an error (``extra="forbid"``); environment variables
that name no setting are ignored (``SAEGUARD_CACHE`` belongs to the model loader). A
non-loopback bind without an auth token is refused.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from monitor.alerts.cluster import cluster_url


class SettingsError(ValueError):
    """Settings that cannot be used (one line, names the field)."""


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAEGUARD_", extra="forbid", frozen=True)

    host: str = Field("127.0.0.1", description="Bind address; anything but loopback needs auth_token.")
    port: int = Field(8765, ge=0, le=65535, description="Bind port (0: pick a free one).")
    model: str = Field("smollm2-135m-instruct", description="Model spec (see `saeguard generate --help`).")
    model_id: str = Field("", description="Model id clients send in `model` (default: the model spec).")
    device: str = Field("auto", description="auto (CUDA when present, else CPU), cpu, cuda, cuda:N.")
    threads: int = Field(2, ge=1, description="torch CPU threads.")
    weights: Literal["auto", "fp32", "bf16", "int4"] = Field(
        "auto", description="The fast path's weight format. auto: the fastest format that passes the pack's "
                            "quality gates (its manifest's `weights`) on a CPU, fp32 on CUDA or for an ungated "
                            "pack; bf16/int4 are CPU kernels (README \"Weight formats\").")
    pack_dir: Path = Field(Path("classifiers/packs/smollm2-135m-instruct"), description="Guard pack directory.")
    policy: Path = Field(Path("policies/default.yaml"), description="Policy file (hot-reloaded).")
    watch_policy: bool = Field(True, description="Reload the policy when its file changes.")
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis for the alert stream.")
    stream: str = Field("saeguard:alerts", description="Alert stream key.")
    stream_maxlen: int = Field(100_000, ge=1, description="Approximate MAXLEN of the stream.")
    redis_wait_replicas: int = Field(0, ge=0, description="Replicas that must confirm each alert batch (Redis WAIT) "
                                     "before it counts as delivered; 0: the primary's reply is enough.")
    redis_wait_timeout_ms: int = Field(500, ge=1, le=900, description="How long a batch waits for those replicas "
                                       "(under the 1 s Redis socket timeout); unconfirmed batches stay spooled.")
    dedup_ttl_s: int = Field(86_400, ge=60, description="How long each alert's write-once key lives in Redis "
                             "(a replay of that alert within it adds nothing twice; ~135 bytes per alert).")
    spool_dir: Path = Field(Path("var/spool"), description="Alert spool directory (used while Redis is away).")
    auth_token: str = Field("", description="Bearer token; required for non-loopback binds and policy reload.")
    max_prompt_tokens: int = Field(2048, ge=1, description="Longest accepted prompt in tokens (413 above).")
    max_body_bytes: int = Field(4 * 1024 * 1024, ge=1024, description="Largest request body (413 above).")
    max_tokens_cap: int = Field(512, ge=1, description="Largest max_tokens a request may ask for (422 above).")
    default_max_tokens: int = Field(256, ge=1, description="max_tokens when a request gives none (capped by max_tokens_cap and the context).")
    shutdown_timeout_s: float = Field(30.0, ge=0, description="How long SIGTERM waits for in-flight streams.")
    alert_flush_timeout_s: float = Field(5.0, ge=0, description="How long shutdown waits for alerts to reach Redis.")
    max_queue: int = Field(64, ge=1, description="Requests waiting for the generation worker before 503.")
    max_batch: int = Field(8, ge=1, le=256, description="Chat requests decoded together (continuous batching); 1: one at a time.")
    prefill_chunk_tokens: int = Field(
        256, ge=0, le=65536,
        description="A longer prompt joining a running batch is prefilled this many tokens per decode step, "
                    "so the other streams keep going (smaller: shorter pauses, later first token for the "
                    "long prompt); 0: prefill every prompt in one forward.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,  # noqa: ARG003
        file_secret_settings: PydanticBaseSettingsSource,  # noqa: ARG003
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        files: list[PydanticBaseSettingsSource] = []
        if settings_cls.model_config.get("yaml_file"):
            files.append(YamlConfigSettingsSource(settings_cls))
        if settings_cls.model_config.get("toml_file"):
            files.append(TomlConfigSettingsSource(settings_cls))
        return (init_settings, env_settings, *files)

    @model_validator(mode="after")
    def _check(self) -> ServerSettings:
        if not is_loopback(self.host) and not self.auth_token:
            raise ValueError(f"binding {self.host} (not loopback) needs auth_token "
                             "(--auth-token or SAEGUARD_AUTH_TOKEN)")
        if self.redis_wait_replicas and cluster_url(self.redis_url) is not None:
            raise ValueError("redis_wait_replicas is not supported with a redis+cluster:// URL "
                             "(WAIT would not reach the stream's node); use 0")
        return self

    @property
    def served_model_id(self) -> str:
        return self.model_id or self.model


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(config_file: str | Path | None = None, **flags: Any) -> ServerSettings:
    """Settings from ``config_file`` (``.yaml``/``.yml``/``.toml``), env and ``flags``."""
    from pydantic import ValidationError

    cls: type[ServerSettings] = ServerSettings
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise SettingsError(f"config file not found: {path}")
        key = {".yaml": "yaml_file", ".yml": "yaml_file", ".toml": "toml_file"}.get(path.suffix.lower())
        if key is None:
            raise SettingsError(f"config file {path}: use .yaml, .yml or .toml")
        config = SettingsConfigDict(**ServerSettings.model_config)
        if key == "yaml_file":
            config["yaml_file"] = path
        else:
            config["toml_file"] = path
        cls = type("FileServerSettings", (ServerSettings,), {"model_config": config})
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return cls(**given)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        src = f" (config {config_file})" if config_file else ""
        msg = str(first["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"{where}: {msg}{src}") from None
