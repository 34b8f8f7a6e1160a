"""Sizes for people: one parser for every size setting, binary units for every byte count shown."""

from __future__ import annotations

import pytest

from rahcp_prefect.bulk.config import BulkDownloadConfig, BulkUploadConfig
from rahcp_prefect.client.config import ClientConfig
from rahcp_prefect.client.sizes import SizeError, exact_size_text, format_bytes, parse_size

MIB = 1024 * 1024


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("64 MiB", 64 * MIB),
        ("64MiB", 64 * MIB),
        ("64 mib", 64 * MIB),
        ("1.5 GB", 1_500_000_000),
        ("0.5 KiB", 512),
        ("4096", 4096),
        ("1,048,576", MIB),
        ("2 GiB", 2 * 1024 * MIB),
        ("10 B", 10),
        (4096, 4096),
        (4096.0, 4096),
    ],
)
def test_sizes_parse_with_or_without_unit(text: object, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("lots", "chunk_size must be a byte count or a size with a unit"),
        ("5 XB", "unknown unit 'XB'"),
        ("1.3 B", "not a whole number of bytes"),
        ("-5", "must not be negative"),
        (-5, "must not be negative"),
        (True, "not a boolean"),
        (2.5, "whole number of bytes"),
        (None, "got NoneType"),
    ],
)
def test_a_bad_size_names_the_setting_and_what_is_wrong(text: object, message: str) -> None:
    with pytest.raises(SizeError, match=message) as caught:
        parse_size(text, "chunk_size")
    assert "chunk_size" in str(caught.value)


def test_byte_counts_read_in_binary_units() -> None:
    assert format_bytes(74_207_280) == "70.8 MiB"
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    assert format_bytes(500 * 1024**3) == "500 GiB"
    assert exact_size_text(64 * MIB) == "64 MiB" and parse_size(exact_size_text(64 * MIB)) == 64 * MIB
    assert exact_size_text(MIB + 1) == f"{MIB + 1} B" and parse_size(exact_size_text(MIB + 1)) == MIB + 1


def test_sdk_config_takes_sizes_from_arguments_and_environment() -> None:
    config = ClientConfig.build(multipart_threshold="16 MiB", multipart_chunk="8 MiB")
    assert (config.multipart_threshold, config.multipart_chunk) == (16 * MIB, 8 * MIB)
    from_env = ClientConfig.from_env({"HCP_MULTIPART_CHUNK": "6 MiB", "HCP_MULTIPART_THRESHOLD": "1 GB"})
    assert (from_env.multipart_chunk, from_env.multipart_threshold) == (6 * MIB, 10**9)
    with pytest.raises(ValueError, match="HCP_MULTIPART_CHUNK: unknown unit 'parsecs'"):
        ClientConfig.from_env({"HCP_MULTIPART_CHUNK": "8 parsecs"})
    with pytest.raises(ValueError, match="multipart_chunk"):
        ClientConfig.build(multipart_chunk="1 MiB")  # below S3's 5 MiB part


def test_engine_configs_take_sizes(tmp_path) -> None:
    upload = BulkUploadConfig(client=None, bucket="bkt", source_dir=tmp_path, tracker=None, chunk_size="256 KiB")  # type: ignore[arg-type]
    download = BulkDownloadConfig(
        client=None, bucket="bkt", dest_dir=tmp_path, tracker=None, chunk_size="1 MiB", stream_threshold="50 MiB"  # type: ignore[arg-type]
    )
    assert upload.chunk_size == 256 * 1024
    assert (download.chunk_size, download.stream_threshold) == (MIB, 50 * MIB)
    with pytest.raises(SizeError, match="stream_threshold"):
        BulkDownloadConfig(client=None, bucket="bkt", dest_dir=tmp_path, tracker=None, stream_threshold="big")  # type: ignore[arg-type]


def test_transfer_settings_form_speaks_units() -> None:
    from rahcp_prefect.blocks import HCPTransferSettings

    settings = HCPTransferSettings(multipart_chunk="8 MiB").with_overrides({"chunk_size": "2 MiB"})
    assert (settings.multipart_chunk, settings.chunk_size) == (8 * MIB, 2 * MIB)
    stored = settings.model_dump(mode="json")
    assert (stored["multipart_chunk"], stored["chunk_size"]) == ("8 MiB", "2 MiB")
    assert HCPTransferSettings.model_validate(stored) == settings

    schema = HCPTransferSettings.model_json_schema()["properties"]
    size_fields = ["chunk_size", "stream_threshold", "multipart_threshold", "multipart_chunk"]
    for name in size_fields:
        assert schema[name]["type"] == "string", name
        assert "(bytes or with unit)" in schema[name]["title"], name
        assert '"64 MiB"' in schema[name]["description"], name
    assert schema["multipart_chunk"]["default"] == "64 MiB"
    for name, field in schema.items():  # every other number says its unit or is a count
        if field.get("type") == "number":
            assert "seconds" in field["title"], name

    with pytest.raises(ValueError, match=r"multipart_chunk = '1 MiB': Value error, must be at least 5 MiB \(5242880 bytes\), got 1.0 MiB \(1048576 bytes\)"):
        HCPTransferSettings().with_overrides({"multipart_chunk": "1 MiB"})
    with pytest.raises(ValueError, match="chunk_size"):
        HCPTransferSettings(chunk_size="a lot")
