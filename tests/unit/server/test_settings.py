"""Daemon settings: defaults < config file < SAEGUARD_* env < flags; refusals."""

import pytest

from monitor.server.settings import SettingsError, is_loopback, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("SAEGUARD_"):
            monkeypatch.delenv(key)


def test_defaults_bind_loopback_with_the_default_pack_policy_and_redis():
    s = load_settings()
    assert (s.host, s.port) == ("127.0.0.1", 8765)
    assert str(s.pack_dir) == "classifiers/packs/smollm2-135m-instruct"
    assert str(s.policy) == "policies/default.yaml"
    assert s.redis_url == "redis://127.0.0.1:6379/0" and s.stream == "saeguard:alerts"
    assert s.served_model_id == "smollm2-135m-instruct" and s.auth_token == ""


@pytest.mark.parametrize("suffix,text", [
    (".yaml", "port: 9000\nstream: file:alerts\nmax_tokens_cap: 100\n"),
    (".toml", "port = 9000\nstream = \"file:alerts\"\nmax_tokens_cap = 100\n"),
])
def test_file_then_env_then_flags(tmp_path, monkeypatch, suffix, text):
    cfg = tmp_path / f"saeguard{suffix}"
    cfg.write_text(text)
    s = load_settings(cfg)
    assert (s.port, s.stream, s.max_tokens_cap) == (9000, "file:alerts", 100)
    monkeypatch.setenv("SAEGUARD_PORT", "9100")
    monkeypatch.setenv("SAEGUARD_STREAM", "env:alerts")
    s = load_settings(cfg)
    assert (s.port, s.stream, s.max_tokens_cap) == (9100, "env:alerts", 100)
    s = load_settings(cfg, port=9200, stream=None)
    assert (s.port, s.stream) == (9200, "env:alerts")


def test_misspelt_key_in_file_is_an_error(tmp_path):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("prot: 9000\n")
    with pytest.raises(SettingsError, match="prot"):
        load_settings(cfg)


def test_non_loopback_bind_needs_a_token(monkeypatch):
    with pytest.raises(SettingsError, match="auth_token"):
        load_settings(host="0.0.0.0")
    assert load_settings(host="0.0.0.0", auth_token="s3cret").host == "0.0.0.0"
    monkeypatch.setenv("SAEGUARD_AUTH_TOKEN", "from-env")
    assert load_settings(host="10.1.2.3").auth_token == "from-env"


def test_out_of_range_and_missing_file():
    with pytest.raises(SettingsError, match="port"):
        load_settings(port=70000)
    with pytest.raises(SettingsError, match="not found"):
        load_settings("/nonexistent/saeguard.yaml")


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")


def test_dedup_ttl_defaults_to_a_day_and_refuses_less_than_a_minute(monkeypatch):
    assert load_settings().dedup_ttl_s == 86_400
    monkeypatch.setenv("SAEGUARD_DEDUP_TTL_S", "7200")
    assert load_settings().dedup_ttl_s == 7200
    assert load_settings(dedup_ttl_s=600).dedup_ttl_s == 600
    with pytest.raises(SettingsError, match="dedup_ttl_s"):
        load_settings(dedup_ttl_s=10)


def test_replica_confirmation_is_off_by_default_and_refused_on_a_cluster_url():
    s = load_settings()
    assert (s.redis_wait_replicas, s.redis_wait_timeout_ms) == (0, 500)
    assert load_settings(redis_wait_replicas=1).redis_wait_replicas == 1
    with pytest.raises(SettingsError, match="redis_wait_replicas is not supported"):
        load_settings(redis_wait_replicas=1, redis_url="redis+cluster://127.0.0.1:7000")
    with pytest.raises(SettingsError, match="redis_wait_replicas is not supported"):
        load_settings(redis_wait_replicas=1, redis_url="rediss+cluster://127.0.0.1:7000")
    with pytest.raises(SettingsError, match="redis_wait_timeout_ms"):
        load_settings(redis_wait_timeout_ms=5000)


def test_prefill_chunk_defaults_to_the_engines_and_zero_turns_it_off(monkeypatch):
    from monitor.engine import Engine
    from monitor.engine.batch import PREFILL_CHUNK
    from tests.toymodel import ToyTokenizer, toy_model

    assert load_settings().prefill_chunk_tokens == PREFILL_CHUNK == 256
    monkeypatch.setenv("SAEGUARD_PREFILL_CHUNK_TOKENS", "64")
    assert load_settings().prefill_chunk_tokens == 64
    with pytest.raises(SettingsError, match="prefill_chunk_tokens"):
        load_settings(prefill_chunk_tokens=-1)
    engine = Engine(toy_model(), ToyTokenizer())
    assert engine.batch_decoder(4, 64).prefill_chunk == 64
    assert engine.batch_decoder(4, 0).prefill_chunk is None
