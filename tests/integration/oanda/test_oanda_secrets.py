"""The access token never appears in a log record, an exception, a repr or debug info,
even when the server misbehaves and echoes the Authorization header in its error bodies."""

from __future__ import annotations

import logging
import traceback

import pytest

from engine.errors import ConfigError, LTSError

TOKEN = "sekrit-0123456789abcdef-oanda-token"


def _all_text(records: list[logging.LogRecord], errors: list[BaseException]) -> str:
    parts = []
    for record in records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append("".join(traceback.format_exception(*record.exc_info)))
    for exc in errors:
        parts.append("".join(traceback.format_exception(exc)))  # chained causes included
        parts.append(repr(exc))
    return "\n".join(parts)


def test_token_never_leaks_through_logs_or_errors(oanda_stub, caplog):
    oanda_stub.state.echo_auth_in_errors = True
    oanda_stub.state.slow_s = 0.5
    errors: list[BaseException] = []

    with caplog.at_level(logging.DEBUG):
        # 1. the server refuses the token and quotes it back
        wrong = oanda_stub.broker(access_token=TOKEN)
        with pytest.raises(LTSError) as refused:
            wrong.account_summary()
        errors.append(refused.value)

        # 2. the right token, a storm whose error bodies quote it, then success
        oanda_stub.state.access_token = TOKEN
        broker = oanda_stub.broker(access_token=TOKEN, timeout_s=0.3)
        oanda_stub.state.script("order_create", 429, 503, "drop")
        result = broker.open_order({"symbol": "EURUSD", "side": "buy", "quantity": 10, "client_order_id": "s-1"})
        assert result.success

        # 3. retries run out on a read
        oanda_stub.state.script("open_trades", 503, 503, 503)
        limited = oanda_stub.broker(access_token=TOKEN, max_retries=2)
        with pytest.raises(LTSError) as exhausted:
            limited.get_open_orders()
        errors.append(exhausted.value)

        # 4. a forbidden account, the body quoting the credentials
        other = oanda_stub.broker(access_token=TOKEN, account_id="nope")
        with pytest.raises(LTSError) as forbidden:
            other.get_open_orders()
        errors.append(forbidden.value)

    text = _all_text(caplog.records, errors)
    assert "Bearer ***" in text  # the echoed header did reach the logs, redacted
    assert TOKEN not in text
    for shown in (repr(broker), str(broker.params), str(broker.get_debug_info()), repr(broker._transport())):
        assert TOKEN not in shown


def test_token_comes_from_the_environment_when_not_configured(oanda_stub, monkeypatch):
    monkeypatch.setenv("OANDA_ACCESS_TOKEN", oanda_stub.access_token)
    broker = oanda_stub.broker(access_token=None)  # operator code: the env fallback applies
    assert broker.account_summary()["account_id"] == oanda_stub.account_id


def test_a_plugin_the_runtime_ruled_the_environment_out_for_never_reads_it(oanda_stub, monkeypatch):
    monkeypatch.setenv("OANDA_ACCESS_TOKEN", oanda_stub.access_token)
    monkeypatch.setenv("OANDA_ACCOUNT_ID", oanda_stub.account_id)
    broker = oanda_stub.broker(access_token=None, account_id=None)
    broker.use_operator_policies(outbound=broker.outbound, operator_env=False)
    with pytest.raises(ConfigError, match=r"access_token is not set; give the access_token key \(config file or "
                                          r"--access_token\)$"):
        broker.account_summary()
    assert oanda_stub.state.requests == []  # refused before any request
