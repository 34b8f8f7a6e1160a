"""Defaults defined once: the blocks, the client config, the engine configs and the flows all
take their defaults from ``rahcp_prefect.defaults``."""

from __future__ import annotations

import inspect
from dataclasses import fields
from typing import Any

from rahcp_prefect import defaults
from rahcp_prefect.blocks import HCPCredentials, HCPTransferSettings
from rahcp_prefect.bulk.config import BulkDownloadConfig, BulkUploadConfig
from rahcp_prefect.bulk.validation import MAX_KEY_BYTES as VALIDATION_MAX_KEY_BYTES
from rahcp_prefect.bulk.verify import hash_objects
from rahcp_prefect.client import HCPClient
from rahcp_prefect.client.config import ClientConfig, TransferSettings
from rahcp_prefect.testing.storage import MAX_KEY_BYTES as EMULATOR_MAX_KEY_BYTES
from rahcp_prefect.tracker.base import MAX_TRACKED_TEXT_BYTES

ENGINE = {
    "workers": defaults.WORKERS,
    "max_workers": defaults.MAX_WORKERS,
    "queue_depth": defaults.QUEUE_DEPTH,
    "presign_batch_size": defaults.PRESIGN_BATCH_SIZE,
    "chunk_size": defaults.CHUNK_SIZE,
    "progress_interval": defaults.PROGRESS_INTERVAL,
}
MULTIPART = {
    "multipart_threshold": defaults.MULTIPART_THRESHOLD,
    "multipart_chunk": defaults.MULTIPART_CHUNK,
    "multipart_concurrency": defaults.MULTIPART_CONCURRENCY,
}
THROTTLING = {
    "retry_deadline": defaults.RETRY_DEADLINE,
    "max_bandwidth": defaults.MAX_BANDWIDTH,
}
CONNECTION = {
    "endpoint": defaults.ENDPOINT,
    "timeout": defaults.TIMEOUT,
    "max_retries": defaults.MAX_RETRIES,
    "retry_base_delay": defaults.RETRY_BASE_DELAY,
}


def _field_defaults(model: Any) -> dict[str, Any]:
    return {name: info.default for name, info in model.model_fields.items()}


def _signature_defaults(function: Any) -> dict[str, Any]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def test_the_documented_defaults() -> None:
    assert (defaults.WORKERS, defaults.QUEUE_DEPTH, defaults.PRESIGN_BATCH_SIZE) == (10, 8, 200)
    assert defaults.MAX_WORKERS == 256
    assert (defaults.MULTIPART_THRESHOLD, defaults.MULTIPART_CHUNK) == (100 * 1024**2, 64 * 1024**2)
    assert (defaults.MULTIPART_CONCURRENCY, defaults.COMMIT_CONCURRENCY, defaults.BATCH_SIZE) == (6, 8, 5000)


def test_transfer_settings_block_defaults_are_the_defaults() -> None:
    block = _field_defaults(HCPTransferSettings)
    expected = ENGINE | MULTIPART | THROTTLING | {
        "stream_threshold": defaults.STREAM_THRESHOLD,
        "commit_concurrency": defaults.COMMIT_CONCURRENCY,
    }
    assert {name: block[name] for name in expected} == expected
    assert HCPTransferSettings().engine_options("download") | HCPTransferSettings().client_options() == (
        ENGINE | MULTIPART | THROTTLING | {"stream_threshold": defaults.STREAM_THRESHOLD, "verify_download": False}
    )


def test_credentials_block_and_client_config_agree() -> None:
    block = _field_defaults(HCPCredentials)
    assert {name: block[name] for name in CONNECTION} == CONNECTION
    config = _field_defaults(ClientConfig)
    expected = CONNECTION | MULTIPART | THROTTLING | {
        "complete_timeout_per_gib": defaults.COMPLETE_TIMEOUT_PER_GIB,
        "max_connections": defaults.MAX_CONNECTIONS,
    }
    assert {name: config[name] for name in expected} == expected
    client = _signature_defaults(HCPClient.__init__)
    assert {name: client[name] for name in expected} == expected
    settings = _field_defaults(TransferSettings)
    assert {name: settings[name] for name in MULTIPART} == MULTIPART
    assert settings["timeout"] == defaults.TIMEOUT


def test_engine_configs_and_the_fixity_check_agree() -> None:
    for config in (BulkUploadConfig, BulkDownloadConfig):
        engine = {item.name: item.default for item in fields(config)}
        assert {name: engine[name] for name in ENGINE} == ENGINE
    assert {item.name: item.default for item in fields(BulkDownloadConfig)}["stream_threshold"] == (
        defaults.STREAM_THRESHOLD
    )
    verify = _signature_defaults(hash_objects)
    expected = {name: ENGINE[name] for name in ("workers", "queue_depth", "presign_batch_size", "chunk_size")}
    assert {name: verify[name] for name in expected} == expected


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
