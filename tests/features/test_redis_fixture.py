"""The Redis fixture fails loudly, naming the install script, without redis-server."""

from __future__ import annotations

import pytest

from tests.support.redis import INSTALL_SCRIPT, find_redis_server


def test_missing_redis_server_names_script(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(pytest.fail.Exception) as raised:
        find_redis_server()
    assert "redis-server is not installed" in str(raised.value)
    assert INSTALL_SCRIPT in str(raised.value)


def test_redis_server_found_on_path():
    assert find_redis_server().endswith("redis-server")
