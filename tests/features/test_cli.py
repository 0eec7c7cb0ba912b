"""``adaptrec features build``: option errors exit 2 with one line on stderr."""

from __future__ import annotations

import pytest

from adaptrec.cli import main


def _run(capsys, *arguments: str) -> tuple[int, str]:
    code = main(["features", "build", *arguments])
    return code, capsys.readouterr().err


def test_future_end_date_rejected(capsys, tmp_path):
    code, err = _run(capsys, "--repo", str(tmp_path), "--end-date", "2999-01-01")

    assert code == 2
    assert "2999-01-01" in err
    assert "is in the future" in err
    assert "Traceback" not in err


def test_invalid_end_date_rejected(capsys, tmp_path):
    code, err = _run(capsys, "--repo", str(tmp_path), "--end-date", "yesterday")

    assert code == 2
    assert "invalid end date 'yesterday'" in err
    assert "ISO 8601" in err


def test_redis_url_needs_redis_store(capsys, tmp_path):
    code, err = _run(capsys, "--repo", str(tmp_path), "--redis-url", "127.0.0.1:1")

    assert code == 2
    assert "--redis-url needs --online-store redis" in err


def test_unknown_online_store_rejected(capsys):
    with pytest.raises(SystemExit) as raised:
        main(["features", "build", "--online-store", "dynamo"])

    assert raised.value.code == 2
    assert "invalid choice: 'dynamo'" in capsys.readouterr().err


def test_action_required(capsys):
    code = main(["features"])

    assert code == 2
    assert "choose an action: build" in capsys.readouterr().err
