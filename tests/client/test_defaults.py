"""Each setting is declared once (``ConnectionSettings``, ``WireSettings``, ``EngineSettings``,
``CommitSettings``) and reaches every layer from the blocks: a flow's client and engine, built
from ``HCPCredentials`` and ``HCPTransferSettings`` (and ``settings_overrides``) as the flows
build them, get every value the blocks hold."""

from __future__ import annotations

import inspect
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from rahcp_prefect import defaults
from rahcp_prefect.blocks import HCPCredentials, HCPTransferSettings
from rahcp_prefect.bulk.config import BulkDownloadConfig, BulkUploadConfig
from rahcp_prefect.bulk.settings import EngineSettings
from rahcp_prefect.bulk.validation import MAX_KEY_BYTES as VALIDATION_MAX_KEY_BYTES
from rahcp_prefect.bulk.validation import InvalidInputError
from rahcp_prefect.client.config import ENV_VARIABLES, ClientConfig, ConnectionSettings, WireSettings
from rahcp_prefect.job.settings import CommitSettings
from rahcp_prefect.testing.storage import MAX_KEY_BYTES as EMULATOR_MAX_KEY_BYTES
from rahcp_prefect.tracker import create_tracker
from rahcp_prefect.tracker.checks import MAX_TRACKED_TEXT_BYTES

MIB = 1024 * 1024

CONNECTION = {
    "endpoint": "https://hcp.example/api/v1",
    "tenant": "archive",
    "verify_ssl": False,
    "ca_bundle": "/etc/pki/archive-ca.pem",
    "timeout": 12.5,
    "max_retries": 7,
    "retry_base_delay": 0.25,
}
WIRE = {
    "multipart_threshold": 50 * MIB,
    "multipart_chunk": 16 * MIB,
    "multipart_concurrency": 3,
    "complete_timeout_per_gib": 45.0,
    "max_connections": 17,
    "retry_deadline": 99.0,
    "max_bandwidth": 5 * MIB,
}
ENGINE = {
    "workers": 21,
    "max_workers": 77,
    "queue_depth": 3,
    "presign_batch_size": 50,
    "chunk_size": 2 * MIB,
    "stream_threshold": 20 * MIB,
    "progress_interval": 0.5,
    "verify_upload": True,
    "verify_download": True,
}


def _non_default(model: Any) -> None:
    """Every value above differs from its default, so arriving proves it came from the block."""
    for values in (CONNECTION, WIRE, ENGINE):
        for name, value in values.items():
            if name in model.model_fields:
                assert model.model_fields[name].default != value, name


def test_every_client_setting_is_declared_once_and_in_a_block() -> None:
    identity = {"username", "password"}
    assert set(ClientConfig.model_fields) == set(ConnectionSettings.model_fields) | set(WireSettings.model_fields) | identity
    assert set(ConnectionSettings.model_fields) == set(CONNECTION)
    assert set(WireSettings.model_fields) == set(WIRE)
    assert set(EngineSettings.model_fields) == set(ENGINE)
    for name in ClientConfig.model_fields:  # every ClientConfig field reachable from a block
        assert name in HCPCredentials.model_fields or name in HCPTransferSettings.model_fields, name
    blocks = set(HCPTransferSettings.model_fields) - {"block_type_slug"}
    assert blocks == set(WireSettings.model_fields) | set(EngineSettings.model_fields) | set(CommitSettings.model_fields)
    for name, info in ClientConfig.model_fields.items():  # one declaration: the same FieldInfo
        owner = HCPCredentials if name in HCPCredentials.model_fields else HCPTransferSettings
        if name not in identity:
            assert owner.model_fields[name].default == info.default, name
            assert owner.model_fields[name].metadata == info.metadata, name  # the same bounds
            assert owner.model_fields[name].description == info.description, name
        assert ENV_VARIABLES[name][0] == f"HCP_{name.upper()}"
    _non_default(ClientConfig)
    _non_default(EngineSettings)


async def test_a_flows_client_and_engine_get_every_value_of_the_blocks(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("unused: verify_ssl is off")
    credentials = HCPCredentials(username="u", password="pw", **CONNECTION)
    half = dict(list(ENGINE.items())[:4]) | dict(list(WIRE.items())[:3])
    settings = HCPTransferSettings(**half).with_overrides(  # the rest as a run's settings_overrides
        {name: value for name, value in (ENGINE | WIRE).items() if name not in half}
    )
    client = credentials.get_client(settings)  # what the flows and tasks open
    try:
        config = client.config
        for name, value in (CONNECTION | WIRE).items():
            assert getattr(config, name) == value, name
        assert (config.username, config.password.get_secret_value()) == ("u", "pw")
        assert client.data.max_connections == WIRE["max_connections"]
        assert client.data.bandwidth is not None and client.data.retry_deadline == WIRE["retry_deadline"]
        assert client.data.timeout == CONNECTION["timeout"] and client.data.max_retries == CONNECTION["max_retries"]
        assert config.complete_timeout(1024**3) == 120.0 + WIRE["complete_timeout_per_gib"]
        assert client.ssl_context is client.data.ssl_context

        tracker = create_tracker(str(tmp_path / "t.db"), job="j")
        try:
            upload = BulkUploadConfig(client=client, bucket="bkt", source_dir=tmp_path, tracker=tracker,
                                      **settings.engine_options("upload"))
            download = BulkDownloadConfig(client=client, bucket="bkt", dest_dir=tmp_path, tracker=tracker,
                                          **settings.engine_options("download"))
        finally:
            tracker.close()
        for config_, direction in ((upload, "upload"), (download, "download")):
            present = {item.name for item in fields(config_)} & set(ENGINE)
            assert present == set(settings.engine_options(direction))
            for name in present:
                assert getattr(config_, name) == ENGINE[name], (direction, name)
        # every engine setting reaches at least one engine config
        assert set(ENGINE) <= {item.name for item in fields(BulkUploadConfig)} | {item.name for item in fields(BulkDownloadConfig)}
    finally:
        await client.aclose()


def test_every_client_setting_can_be_read_from_the_environment() -> None:
    environ = {f"HCP_{name.upper()}": str(value) for name, value in (CONNECTION | WIRE).items()}
    config = ClientConfig.from_env(environ)
    for name, value in (CONNECTION | WIRE).items():
        assert getattr(config, name) == value, name


def test_bounds_are_one_bound_everywhere() -> None:
    for make in (lambda v: ClientConfig(**v), lambda v: HCPTransferSettings(**v)):
        with pytest.raises(ValueError, match="multipart_concurrency"):
            make({"multipart_concurrency": 257})
        with pytest.raises(ValueError, match="max_connections"):
            make({"max_connections": 0})
    with pytest.raises(ValueError, match="settings_overrides: complete_timeout_per_gib"):
        HCPTransferSettings().with_overrides({"complete_timeout_per_gib": -1})


@pytest.mark.parametrize(
    ("name", "refused", "bound"),
    [
        ("workers", 513, "less than or equal to 512"),
        ("max_workers", 0, "greater than or equal to 1"),
        ("presign_batch_size", 1001, "less than or equal to 1000"),
        ("chunk_size", 64 * 1024 - 1, "at least 64 KiB"),
        ("progress_interval", -0.5, "greater than or equal to 0"),
    ],
)
def test_the_engine_configs_enforce_the_bound_the_model_declares(tmp_path: Path, name: str, refused: Any, bound: str) -> None:
    """A value ``EngineSettings`` refuses is refused by both engine configs, naming the same
    field and the same bound; the value at the bound is taken by all three."""
    with pytest.raises(ValueError, match=name) as model_error:
        HCPTransferSettings(**{name: refused})
    assert bound in str(model_error.value)
    common = {"client": None, "bucket": "bkt", "tracker": None}
    makers = {"BulkUploadConfig": lambda **kw: BulkUploadConfig(source_dir=tmp_path, **common, **kw),
              "BulkDownloadConfig": lambda **kw: BulkDownloadConfig(dest_dir=tmp_path, **common, **kw)}
    for where, make in makers.items():
        with pytest.raises(InvalidInputError) as caught:
            make(**{name: refused})
        assert str(caught.value).startswith(f"{where}: {name} = {refused!r}: "), str(caught.value)
        assert bound in str(caught.value)
    at_bound = {"workers": 512, "max_workers": 1, "presign_batch_size": 1000, "chunk_size": 64 * 1024,
                "progress_interval": 0.0}[name]
    assert getattr(HCPTransferSettings(**{name: at_bound}), name) == at_bound
    for make in makers.values():
        assert getattr(make(**{name: at_bound}), name) == at_bound


def test_the_engine_configs_defaults_are_the_models() -> None:
    for config in (BulkUploadConfig, BulkDownloadConfig):
        for item in fields(config):
            if item.name in EngineSettings.model_fields:
                assert item.default == EngineSettings.model_fields[item.name].default, (config, item.name)


def _signature_defaults(function: Any) -> dict[str, Any]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def test_flow_parameters_default_to_the_defaults() -> None:
    from rahcp_prefect.flows.download import bulk_download
    from rahcp_prefect.flows.upload import bulk_upload
    from rahcp_prefect.flows.verify import bulk_verify

    for flow in (bulk_upload, bulk_download):
        assert _signature_defaults(flow.fn)["batch_size"] == defaults.BATCH_SIZE
    assert _signature_defaults(bulk_verify.fn)["workers"] == defaults.WORKERS


def test_one_key_limit_and_the_trackers_wider_column() -> None:
    assert VALIDATION_MAX_KEY_BYTES == EMULATOR_MAX_KEY_BYTES == defaults.MAX_KEY_BYTES == 1024
    assert MAX_TRACKED_TEXT_BYTES > defaults.MAX_KEY_BYTES  # a too-long key is still recorded


def test_a_block_refuses_a_setting_it_does_not_have() -> None:
    """Prefect blocks take unknown fields and drop them: ``ca_bundle`` was once ignored so."""
    with pytest.raises(ValueError, match=r"HCPCredentials has no setting 'ca_bundel'; its settings: ca_bundle, "):
        HCPCredentials(username="u", password="p", ca_bundel="/etc/pki/ca.pem")
    with pytest.raises(ValueError, match=r"HCPTransferSettings has no setting 'max_worker'"):
        HCPTransferSettings(max_worker=3)
