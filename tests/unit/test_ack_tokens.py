"""Acknowledgement links: signed, expiring, naming the notice and its target; a forged or
damaged one is refused (activities.delivery). Single use is the Delivery workflow's: it
accepts one acknowledgement (tests/workflows/test_delivery_workflow.py)."""
from datetime import timedelta

import pytest

from activities.delivery import BadToken, ack_token, read_ack_token


@pytest.fixture(autouse=True)
def key(monkeypatch, tmp_path):
    monkeypatch.setenv("WEIBAO_SECRET_KEY", "test-secret")
    monkeypatch.setenv("WEIBAO_DATA_DIR", str(tmp_path))


def test_a_token_names_its_notice_and_target():
    token = ack_token("ticket-t1:on_site:breach:escalated", "S001")
    assert read_ack_token(token, timedelta(days=7)) == ("ticket-t1:on_site:breach:escalated", "S001")
    assert "S001" not in token or "." in token  # signed, not a bare id


def test_a_forged_or_damaged_token_is_refused(monkeypatch):
    token = ack_token("n1", "S001")
    with pytest.raises(BadToken, match="not valid"):
        read_ack_token(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], timedelta(days=7))
    monkeypatch.setenv("WEIBAO_SECRET_KEY", "another-key")
    with pytest.raises(BadToken, match="not valid"):
        read_ack_token(token, timedelta(days=7))


def test_an_expired_token_is_refused():
    token = ack_token("n1", "S001")
    with pytest.raises(BadToken, match="expired"):
        read_ack_token(token, timedelta(seconds=-1))


def test_without_a_configured_key_one_is_made_once_and_kept(monkeypatch, tmp_path):
    monkeypatch.delenv("WEIBAO_SECRET_KEY")
    token = ack_token("n1", "S001")
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600
    assert read_ack_token(token, timedelta(days=1)) == ("n1", "S001")
