"""The OANDA v20 transport: oandapyV20 requests with timeouts, classified errors, retries.

oandapyV20 0.7.2 has no base-URL option; it builds every URL from the module dict
``oandapyV20.oandapyV20.TRADING_ENVIRONMENTS``. An ``api_url`` override is therefore
registered there as an extra environment named after the URL (idempotent, process-wide,
never replacing ``practice``/``live``).

Error classification (what the caller must do):

* HTTP 429 -> ``TemporaryError`` (retry with backoff; OANDA did not process it).
* HTTP 5xx, timeouts, dropped/refused connections, a garbled 2xx body -> ``AmbiguousError``
  (a ``TemporaryError``): for writes the request may have taken effect, so the broker looks
  the order up by client id before it resends.
* HTTP 400 / 404 on an order operation -> ``OrderRejected`` (never retried);
  404 on a read -> ``NotFound``.
* HTTP 401 / 403 and any other 4xx -> ``BrokerError`` (never retried: fix credentials).

The access token is a secret: it only ever lives in the requests session's headers. Every
message this module produces is passed through ``SecretRedactor``, exceptions are raised
``from None`` (the original may quote a server that echoed credentials), and a logging filter
redacts oandapyV20's own log lines, which quote error bodies verbatim.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import oandapyV20
import oandapyV20.oandapyV20 as oanda_core
import requests
from oandapyV20.endpoints.apirequest import APIRequest
from oandapyV20.exceptions import V20Error
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_random_exponential

from engine.errors import BrokerError, ConfigError, LTSError, NotFound, OrderRejected, TemporaryError
from engine.outbound import OutboundPolicy

logger = logging.getLogger(__name__)

KNOWN_ENVIRONMENTS = ("practice", "live")
T = TypeVar("T")


class AmbiguousError(TemporaryError):
    """A write may or may not have taken effect (timeout, 5xx, dropped connection)."""


class SecretRedactor(logging.Filter):
    """Replaces registered secrets by ``***`` in text and in log records passing through it."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        if secret:
            with self._lock:
                self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            redacted = self.redact(message)
            if redacted != message:
                record.msg, record.args = redacted, None
        return True


REDACTOR = SecretRedactor()
"""One process-wide redactor, installed on oandapyV20's and urllib3's loggers."""
for _name in ("oandapyV20", "oandapyV20.oandapyV20", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(REDACTOR)


def resolve_environment(environment: str, api_url: str | None, policy: OutboundPolicy) -> str:
    """The oandapyV20 environment name to use; registers ``api_url`` when given.

    The URL requests will go to (``api_url``, or the environment's official one) must be
    one ``policy`` allows (the operator's ``outbound_hosts``): checked here, where the
    client is built, whatever was checked when the config was stored."""
    if api_url:
        url = api_url.rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"oanda_broker: api_url must start with http:// or https://, got {api_url!r}")
        policy.check_url(url, "broker_config.api_url")
        name = "lts-" + hashlib.sha1(url.encode()).hexdigest()[:12]
        oanda_core.TRADING_ENVIRONMENTS.setdefault(name, {"api": url, "stream": url})
        return name
    if environment not in KNOWN_ENVIRONMENTS:
        raise ConfigError(
            f"oanda_broker: environment must be one of {', '.join(KNOWN_ENVIRONMENTS)} "
            f"(or set api_url), got {environment!r}"
        )
    policy.check_url(oanda_core.TRADING_ENVIRONMENTS[environment]["api"], "broker_config.environment")
    return environment


def _oanda_error_text(body: str) -> str:
    """``errorCode: errorMessage`` from an OANDA error body (raw text when not JSON)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:300]
    if not isinstance(data, dict):
        return body.strip()[:300]
    code = data.get("errorCode") or (data.get("orderRejectTransaction") or {}).get("rejectReason")
    message = data.get("errorMessage", "")
    return f"{code}: {message}" if code else str(message)


class OandaTransport:
    """Sends oandapyV20 endpoint objects for one account; see the module docstring."""

    def __init__(
        self,
        *,
        access_token: str,
        environment: str,
        timeout_s: float,
        max_retries: int,
        backoff: float,
        backoff_max: float,
        label: str,
    ) -> None:
        REDACTOR.add(access_token)
        self.environment = environment
        self.max_retries = max_retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.label = label  # "oanda <account>" for log lines
        self._api = oandapyV20.API(
            access_token=access_token,
            environment=environment,
            request_params={"timeout": timeout_s},
        )
        # requests.Session is not thread-safe; the broker may be called from a pool
        self._lock = threading.Lock()

    def close(self) -> None:
        self._api.close()

    def __repr__(self) -> str:
        return f"OandaTransport({self.label!r}, environment={self.environment!r})"

    # ---- one attempt ---------------------------------------------------------------
    def send(self, endpoint: APIRequest, what: str, *, order_op: bool = False) -> dict[str, Any]:
        """One request, no retry; failures come back as classified ``LTSError``s."""
        try:
            with self._lock:
                response = self._api.request(endpoint)
        except V20Error as exc:
            raise self._from_status(int(exc.code), REDACTOR.redact(_oanda_error_text(str(exc.msg))), what, order_op) from None
        except requests.Timeout:
            raise AmbiguousError(f"{self.label}: {what} timed out") from None
        except requests.ConnectionError as exc:
            raise AmbiguousError(
                f"{self.label}: {what} lost its connection ({type(exc).__name__})"
            ) from None
        except requests.RequestException as exc:  # dropped mid-body, bad chunking...
            raise AmbiguousError(
                f"{self.label}: {what} failed in transit ({type(exc).__name__})"
            ) from None
        except ValueError as exc:
            # a 2xx whose body is not JSON, or whose status is not the one expected
            raise AmbiguousError(
                f"{self.label}: {what} got an unexpected answer: {REDACTOR.redact(str(exc))[:200]}"
            ) from None
        if not isinstance(response, dict):
            raise AmbiguousError(f"{self.label}: {what} answered {type(response).__name__}, not an object")
        return response

    def _from_status(self, code: int, text: str, what: str, order_op: bool) -> LTSError:
        detail = f"{self.label}: {what} failed with HTTP {code}: {text}"
        if code == 429:  # rate limited: OANDA did not process the request
            return TemporaryError(detail)
        if code >= 500:
            return AmbiguousError(detail)
        if code == 401:
            return BrokerError(
                f"{self.label}: {what} was refused (HTTP 401): the access token is missing, wrong or "
                "expired; set the access_token key or OANDA_ACCESS_TOKEN"
            )
        if code == 403:
            return BrokerError(
                f"{detail} (is account_id right, and does the token belong to it?)"
            )
        if code in (400, 404) and order_op:
            return OrderRejected(detail)
        if code == 404:
            return NotFound(detail)
        return BrokerError(detail)

    # ---- retries --------------------------------------------------------------------
    def retrying(self, what: str) -> Retrying:
        """A tenacity loop for temporary failures: exponential backoff with full jitter."""

        def log_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning(
                "%s: %s, attempt %d/%d failed (%s); retrying in %.3fs",
                self.label, what, state.attempt_number, self.max_retries + 1, exc,
                state.next_action.sleep if state.next_action else 0.0,
            )

        return Retrying(
            stop=stop_after_attempt(self.max_retries + 1),
            wait=wait_random_exponential(multiplier=self.backoff, max=self.backoff_max),
            retry=retry_if_exception_type(TemporaryError),
            before_sleep=log_sleep,
            reraise=True,
        )

    def call(
        self, make_endpoint: Callable[[], APIRequest], what: str, *, order_op: bool = False
    ) -> dict[str, Any]:
        """Send with retries; only for requests that are safe to repeat (reads, absolute sets)."""
        return self.run_with_retries(lambda: self.send(make_endpoint(), what, order_op=order_op), what)

    def run_with_retries(self, attempt: Callable[[], T], what: str) -> T:
        """Run ``attempt`` until it succeeds, raises a non-temporary error, or retries run out."""
        try:
            for retry_state in self.retrying(what):
                with retry_state:
                    return attempt()
        except TemporaryError as exc:
            raise type(exc)(
                f"{exc} (gave up after {self.max_retries + 1} attempts)"
            ) from None
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover
