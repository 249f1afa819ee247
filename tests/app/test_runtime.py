from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr

from app.runtime import describe
from app.settings import load_settings


def test_the_storage_line_names_hosts_but_never_credentials(tmp_path: Path) -> None:
    configured = load_settings(
        env_file=None,
        data_dir=tmp_path,
        mongodb_uri="mongodb://app:s3cret-pass@db1.internal:27017,db2.internal:27017/?replicaSet=rs0",
        redis_url="redis://:r3dis-pass@cache.internal:6380/2",
    )

    line = describe(configured, configured)

    assert "s3cret-pass" not in line and "r3dis-pass" not in line
    assert "MongoDB external" in line
    assert "Redis external at redis://cache.internal:6380/2" in line


def test_the_storage_line_says_what_is_embedded(tmp_path: Path) -> None:
    configured = load_settings(env_file=None, data_dir=tmp_path)
    effective = configured.model_copy(
        update={
            "mongodb_uri": SecretStr("mongodb://127.0.0.1:5000/?directConnection=true&retryWrites=false"),
            "redis_url": SecretStr("redis://127.0.0.1:5001/0"),
        }
    )

    line = describe(configured, effective)

    assert (
        f"MongoDB embedded SecantusDB at mongodb://127.0.0.1:5000, data in {tmp_path.resolve() / 'mongodb'}"
        in line
    )
    assert f"Redis embedded Redis at redis://127.0.0.1:5001/0, data in {tmp_path.resolve() / 'redis'}" in line
