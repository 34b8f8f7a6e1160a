"""Configuration: defaults, validation with clear messages, the HCP_* environment."""

from __future__ import annotations

import logging

import pytest

from rahcp_prefect.client import ClientConfig, HCPClient, TransferSettings
from rahcp_prefect.client.logsetup import apply_log_level_from_env

MIB = 1024 * 1024


async def test_defaults_match_the_spec_table() -> None:
    client = HCPClient()
    config = client.config
    assert config.endpoint == "http://localhost:8000/api/v1"
    assert (config.username, config.password.get_secret_value(), config.tenant) == ("", "", None)
    assert config.timeout == 30.0 and config.max_retries == 4 and config.retry_base_delay == 1.0
    assert config.multipart_threshold == 104857600 and config.multipart_chunk == 67108864
    assert config.multipart_concurrency == 6 and config.verify_ssl is True
    assert client.token is None
    assert client.transfer_settings == TransferSettings(
        verify_ssl=True, timeout=30.0, multipart_threshold=104857600,
        multipart_chunk=67108864, multipart_concurrency=6,
    )
    await client.aclose()


async def test_every_parameter_is_applied() -> None:
    client = HCPClient(
        endpoint="https://hcp.example/api/v1/", username="u", password="pw", tenant="dev-ai",
        timeout=5, max_retries=2, retry_base_delay=0.5, multipart_threshold=10 * MIB,
        multipart_chunk=8 * MIB, multipart_concurrency=3, verify_ssl=False,
    )
    settings = client.transfer_settings
    assert client.config.endpoint == "https://hcp.example/api/v1"
    assert client.config.tenant == "dev-ai" and client.config.max_retries == 2
    assert (settings.verify_ssl, settings.timeout, settings.multipart_threshold,
            settings.multipart_chunk, settings.multipart_concurrency) == (False, 5.0, 10 * MIB, 8 * MIB, 3)
    assert "pw" not in repr(client) and "pw" not in repr(client.config)
    await client.aclose()


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"multipart_chunk": 5 * MIB - 1}, "multipart_chunk"),
        ({"multipart_chunk": 6 * 1024 * MIB}, "5 GiB"),
        ({"timeout": 0}, "timeout"),
        ({"max_retries": -1}, "max_retries"),
        ({"multipart_concurrency": 0}, "multipart_concurrency"),
        ({"endpoint": "ftp://x"}, "endpoint"),
    ],
)
def test_bad_values_raise_clear_value_error(kwargs: dict, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        HCPClient(**kwargs)


def test_validation_error_never_echoes_the_password() -> None:
    with pytest.raises(ValueError) as info:
        ClientConfig.build(password="topsecret-pw", timeout="soon")
    assert "topsecret-pw" not in str(info.value) and "timeout" in str(info.value)


async def test_from_env_reads_every_variable() -> None:
    env = {
        "HCP_ENDPOINT": "http://emu:9/api/v1", "HCP_USERNAME": "alice", "HCP_PASSWORD": "pw-env",
        "HCP_TENANT": "t1", "HCP_TIMEOUT": "7.5", "HCP_MAX_RETRIES": "9", "HCP_RETRY_BASE_DELAY": "0.25",
        "HCP_MULTIPART_THRESHOLD": "1000", "HCP_MULTIPART_CHUNK": str(6 * MIB),
        "HCP_MULTIPART_CONCURRENCY": "2", "HCP_VERIFY_SSL": "false", "HCP_MAX_CONNECTIONS": "12",
    }
    client = HCPClient.from_env(env)
    c = client.config
    assert (c.endpoint, c.username, c.password.get_secret_value(), c.tenant) == ("http://emu:9/api/v1", "alice", "pw-env", "t1")
    assert (c.timeout, c.max_retries, c.retry_base_delay) == (7.5, 9, 0.25)
    assert (c.multipart_threshold, c.multipart_chunk, c.multipart_concurrency) == (1000, 6 * MIB, 2)
    assert c.verify_ssl is False and c.max_connections == 12
    await client.aclose()


async def test_from_env_empty_values_keep_defaults_and_overrides_win() -> None:
    client = HCPClient.from_env({"HCP_TIMEOUT": "", "HCP_TENANT": "  "}, max_retries=1)
    assert client.config.timeout == 30.0 and client.config.tenant is None and client.config.max_retries == 1
    await client.aclose()


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("HCP_TIMEOUT", "abc"),
        ("HCP_MAX_RETRIES", "2.5"),
        ("HCP_RETRY_BASE_DELAY", "fast"),
        ("HCP_MULTIPART_THRESHOLD", "100 parsecs"),
        ("HCP_MULTIPART_CHUNK", "big"),
        ("HCP_MULTIPART_CONCURRENCY", "x"),
        ("HCP_VERIFY_SSL", "maybe"),
    ],
)
def test_from_env_bad_value_names_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        HCPClient.from_env({variable: value})


def test_from_env_chunk_below_5_mib_is_refused() -> None:
    with pytest.raises(ValueError, match="multipart_chunk"):
        HCPClient.from_env({"HCP_MULTIPART_CHUNK": str(MIB)})


def test_rahcp_log_level_sets_the_package_logger() -> None:
    logger = logging.getLogger("rahcp_prefect")
    before = logger.level
    try:
        assert apply_log_level_from_env({}) is None
        assert apply_log_level_from_env({"RAHCP_LOG_LEVEL": "debug"}) == logging.DEBUG
        assert logger.level == logging.DEBUG
        assert apply_log_level_from_env({"RAHCP_LOG_LEVEL": "ERROR"}) == logging.ERROR
        assert logger.level == logging.ERROR
        with pytest.raises(ValueError, match="RAHCP_LOG_LEVEL"):
            apply_log_level_from_env({"RAHCP_LOG_LEVEL": "loud"})
    finally:
        logger.setLevel(before)


def test_clients_share_one_tls_context_per_verify_setting() -> None:
    """Loading the CA bundle per client cost ~18 ms (a client is opened per task and per
    HCPBucket call): every client shares one context, and verify_ssl=False never gets the
    verifying one."""
    import ssl

    from rahcp_prefect.client import HCPClient
    from rahcp_prefect.client.tls import ssl_context

    verifying, lax = ssl_context(True, None), ssl_context(False, None)
    assert verifying is ssl_context(True, None) and lax is ssl_context(False, None)
    assert verifying.verify_mode == ssl.CERT_REQUIRED and verifying.check_hostname
    assert lax.verify_mode == ssl.CERT_NONE and not lax.check_hostname
    # one context per client, shared by its two planes
    one, two = HCPClient(), HCPClient(verify_ssl=False)
    assert one.ssl_context is verifying and one.data.ssl_context is verifying
    assert two.ssl_context is lax and two.data.ssl_context is lax
