"""A prediction API over HTTP as a target, through :class:`~miaudit.targets.CallableTarget`.

An audited model is often reachable only as a served endpoint. :class:`HttpPredictor` is the
callable that :class:`CallableTarget` wraps: it sends records in batches as JSON
(``{"instances": [...]}``, the TensorFlow Serving / KServe v1 convention; both keys are
settable), reads the answers (``{"predictions": [...]}``), keeps to a request rate, retries
what a server may fail transiently (connection errors, timeouts, 429 and 5xx, honouring
``Retry-After``), and never sends more records than the query budget allows: the request
that would pass it is not sent, and the audit stops with a message saying how many records
were queried. A record asked about again (the target's signals and its answers for the
reference attacks, say) is answered from memory instead of the API, so it costs the budget
once (``memoize``). What it did (queries, records answered from memory, requests, retries)
goes into the report.

The API is not trusted: redirects are never followed (a redirect to another host would
carry the credentials in ``headers`` there; the audit stops and names where it pointed),
each request has a total deadline (``deadline_s``, against a server that drips its answer
byte by byte) and a cap on the bytes read (``max_response_bytes``, against one that floods),
and a secret in the URL (``user:password@``, query values such as ``?api_key=…``) is
redacted wherever the URL is shown (:func:`redact_url`).

Only the standard library is used; the answers are validated by ``CallableTarget`` like
any other callable's.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping

import numpy as np

from miaudit.errors import InvalidAuditInput
from miaudit.targets.adapters import CallableTarget
from miaudit.validation import is_int, is_real

__all__ = ["HttpPredictor", "QueryBudgetExceeded", "http_target", "redact_url"]

#: Status codes worth a retry: the server is busy or failed, not the request.
_TRANSIENT = {408, 425, 429, 500, 502, 503, 504}
#: Defaults of the per-request bounds: a minute and a half in all, 64 MiB of answer.
DEFAULT_DEADLINE_S = 90.0
DEFAULT_MAX_RESPONSE_BYTES = 64 << 20
_READ_CHUNK = 1 << 16


def redact_url(url: str) -> str:
    """``url`` as it may be shown: a ``user:password@`` becomes ``***@`` and every query
    value ``***`` (keys stay, so a reader sees which parameters were sent)."""
    try:
        parts = urllib.parse.urlsplit(str(url))
    except ValueError:
        return "(an unparsable URL)"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = parts.query
    if query:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        query = "&".join(f"{key}=***" for key, _ in pairs) or "***"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Turn every redirect into an error: following one would resend the request (and its
    Authorization header) to wherever the server says."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise _Redirected(code, newurl)


class _Redirected(Exception):
    def __init__(self, code: int, location: str) -> None:
        super().__init__(code, location)
        self.code, self.location = code, location


class _ResponseTooLarge(Exception):
    pass


class _DeadlinePassed(Exception):
    pass


_OPENER = urllib.request.build_opener(_NoRedirects)


class QueryBudgetExceeded(InvalidAuditInput):
    """The audit needed more records answered than the API's query budget allows."""


class HttpPredictor:
    """Callable ``predictor(x) -> answers`` that queries a prediction API.

    Parameters
    ----------
    url : str
        ``http://`` or ``https://`` endpoint accepting POSTed JSON.
    batch_size : int
        Records per request.
    max_requests_per_second : float, optional
        Rate limit: requests start at least ``1 / rate`` seconds apart.
    retries : int
        Further attempts of a request after a transient failure, with exponential backoff
        from ``backoff_s`` (or the server's ``Retry-After``).
    timeout_s : float
        Seconds to wait for one response.
    query_budget : int, optional
        Most records the audit may send in total (each record of each request counts).
    request_key, response_key : str
        JSON keys of the records sent and of the answers received.
    headers : mapping, optional
        Extra HTTP headers (an ``Authorization`` token, say). They never enter the report.
    memoize : bool
        Answer a record sent before (the same bytes) from memory: a deterministic API
        would answer it the same, and the budget is spent once. Turn it off for an API whose
        answers are random (noise added per query), where asking again is information.
    deadline_s : float
        Most seconds one request may take in all, connection and reading included (a
        server that answers a byte at a time meets ``timeout_s`` on every read).
    max_response_bytes : int
        Most bytes read from one response; a larger answer stops the audit.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 256,
        max_requests_per_second: float | None = None,
        retries: int = 3,
        timeout_s: float = 30.0,
        query_budget: int | None = None,
        request_key: str = "instances",
        response_key: str = "predictions",
        headers: Mapping[str, str] | None = None,
        memoize: bool = True,
        deadline_s: float = DEFAULT_DEADLINE_S,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        problems = []
        parsed = urllib.parse.urlparse(url) if isinstance(url, str) else None
        if parsed is None or parsed.scheme not in ("http", "https") or not parsed.netloc:
            shown = redact_url(url) if isinstance(url, str) else url
            problems.append(f"url must be an http:// or https:// address, got {shown!r}")
        if not is_int(batch_size) or batch_size < 1:
            problems.append(f"batch_size must be a positive int, got {batch_size!r}")
        if max_requests_per_second is not None and (
            not is_real(max_requests_per_second) or not max_requests_per_second > 0
        ):
            problems.append(
                f"max_requests_per_second must be a positive number, got "
                f"{max_requests_per_second!r}"
            )
        if not is_int(retries) or retries < 0:
            problems.append(f"retries must be an int >= 0, got {retries!r}")
        if not is_real(timeout_s) or not timeout_s > 0:
            problems.append(f"timeout_s must be a positive number, got {timeout_s!r}")
        if query_budget is not None and (not is_int(query_budget) or query_budget < 1):
            problems.append(f"query_budget must be a positive int, got {query_budget!r}")
        for name, key in (("request_key", request_key), ("response_key", response_key)):
            if not isinstance(key, str) or not key:
                problems.append(f"{name} must be a non-empty string, got {key!r}")
        if headers is not None and not (
            isinstance(headers, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items())
        ):
            problems.append("headers must map strings to strings")
        if not isinstance(memoize, bool):
            problems.append(f"memoize must be True or False, got {memoize!r}")
        if not is_real(deadline_s) or not deadline_s > 0:
            problems.append(f"deadline_s must be a positive number, got {deadline_s!r}")
        if not is_int(max_response_bytes) or max_response_bytes < 1:
            problems.append(
                f"max_response_bytes must be a positive int, got {max_response_bytes!r}"
            )
        if problems:
            raise InvalidAuditInput("HTTP target: " + "; ".join(problems))
        self.url = url
        self.shown_url = redact_url(url)
        self.deadline_s = float(deadline_s)
        self.max_response_bytes = int(max_response_bytes)
        self.batch_size = int(batch_size)
        self.min_interval = 0.0 if max_requests_per_second is None else 1 / max_requests_per_second
        self.retries = int(retries)
        self.timeout_s = float(timeout_s)
        self.query_budget = None if query_budget is None else int(query_budget)
        self.request_key = request_key
        self.response_key = response_key
        self._headers = {"Content-Type": "application/json", **dict(headers or {})}
        self.backoff_s = float(backoff_s)
        self._sleep = sleep
        self._clock = clock
        self._last_start: float | None = None
        self.memoize = memoize
        self._memo: dict[bytes, np.ndarray] = {}
        self.queries_used = 0
        self.answered_from_memory = 0
        self.requests_made = 0
        self.retries_made = 0
        self.__name__ = f"HTTP API {urllib.parse.urlsplit(self.shown_url).netloc}"

    def describe(self) -> dict:
        """JSON-ready facts for the report (no headers: they may hold credentials)."""
        return {
            "url": self.shown_url,
            "queries_used": self.queries_used,
            "answered_from_memory": self.answered_from_memory,
            "query_budget": self.query_budget,
            "requests": self.requests_made,
            "retries": self.retries_made,
            "batch_size": self.batch_size,
            "max_requests_per_second": None if not self.min_interval else 1 / self.min_interval,
        }

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if not self.memoize or len(x) == 0:
            return self._send(x)
        # One key per record: a 128-bit digest of its bytes, dtype and shape (the memo then
        # holds 16 bytes a record, not the record). The lookups are a Python loop,
        # microseconds per record against milliseconds per request.
        rows = np.ascontiguousarray(x).reshape(len(x), -1)
        tag = f"{x.dtype.str}{x.shape[1:]}".encode()
        keys = [hashlib.blake2b(tag + row.tobytes(), digest_size=16).digest() for row in rows]
        first: dict[bytes, int] = {}
        for i, key in enumerate(keys):
            if key not in self._memo:
                first.setdefault(key, i)
        if first:
            fresh = self._send(x[list(first.values())])
            for key, answer in zip(first, fresh, strict=True):
                self._memo[key] = answer
        self.answered_from_memory += len(x) - len(first)
        return np.stack([self._memo[key] for key in keys])

    def _send(self, x: np.ndarray) -> np.ndarray:
        """POST ``x`` in batches, within the budget."""
        if self.query_budget is not None and self.queries_used + len(x) > self.query_budget:
            raise QueryBudgetExceeded(
                f"HTTP target {self.shown_url}: the audit needs {len(x)} more records answered but "
                f"{self.queries_used} of the query budget of {self.query_budget} are used; "
                "raise query_budget, audit fewer records, or choose attacks that query less"
            )
        parts = [self._post(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        if not parts:
            return np.empty((0,))
        return np.concatenate(parts)

    def _wait_for_rate(self) -> None:
        if self._last_start is not None and self.min_interval:
            wait = self._last_start + self.min_interval - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_start = self._clock()

    def _post(self, batch: np.ndarray) -> np.ndarray:
        body = json.dumps({self.request_key: batch.tolist()}).encode()
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            self._wait_for_rate()
            self.requests_made += 1
            request = urllib.request.Request(
                self.url, data=body, headers=self._headers, method="POST"
            )
            try:
                payload = self._read(request)
                self.queries_used += len(batch)
                return self._answers(payload, len(batch))
            except _Redirected as redirect:
                where = urllib.parse.urlsplit(redirect.location)
                origin = f"{where.scheme}://{where.netloc}" if where.netloc else "the same host"
                raise InvalidAuditInput(
                    f"HTTP target {self.shown_url} answered {redirect.code}, a redirect to "
                    f"{redact_url(origin)}; miaudit follows no redirect (it would send the "
                    "records and the headers there): set http.url to the final address"
                ) from None
            except _ResponseTooLarge:
                raise InvalidAuditInput(
                    f"HTTP target {self.shown_url}: an answer to {len(batch)} records is "
                    f"larger than http.max_response_bytes ({self.max_response_bytes} bytes); "
                    "raise it, or lower http.batch_size"
                ) from None
            except _DeadlinePassed:
                raise InvalidAuditInput(
                    f"HTTP target {self.shown_url}: an answer to {len(batch)} records took "
                    f"more than http.deadline_s ({self.deadline_s:g} s); raise it, or lower "
                    "http.batch_size"
                ) from None
            except urllib.error.HTTPError as error:
                if error.code not in _TRANSIENT or attempt == self.retries:
                    detail = error.read(300).decode("utf-8", "replace").strip()
                    raise InvalidAuditInput(
                        f"HTTP target {self.shown_url} answered {error.code} {error.reason}"
                        + (f": {detail}" if detail else "")
                        + (f" (after {attempt + 1} attempts)" if attempt else "")
                    ) from None
                wait = _retry_after(error.headers.get("Retry-After"), delay)
            except (
                urllib.error.URLError,
                TimeoutError,
                ConnectionError,
                http.client.HTTPException,  # IncompleteRead, a malformed status line
            ) as error:
                if attempt == self.retries:
                    reason = getattr(error, "reason", None) or f"{type(error).__name__}"
                    raise InvalidAuditInput(
                        f"HTTP target {self.shown_url} cannot be reached after {attempt + 1} "
                        f"attempts: {reason}"
                    ) from None
                wait = delay
            self.retries_made += 1
            self._sleep(wait)
            delay *= 2
        raise AssertionError("unreachable")

    def _read(self, request: urllib.request.Request) -> bytes:
        """One response's body, within the deadline and the byte cap. Each read waits at
        most the time left (and at most ``timeout_s``)."""
        started = time.monotonic()
        timeout = min(self.timeout_s, self.deadline_s)
        with _OPENER.open(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit():
                if int(declared) > self.max_response_bytes:
                    raise _ResponseTooLarge()
            chunks, size = [], 0
            while True:
                left = self.deadline_s - (time.monotonic() - started)
                if left <= 0:
                    raise _DeadlinePassed()
                _set_read_timeout(response, min(self.timeout_s, left))
                try:
                    chunk = response.read1(_READ_CHUNK)
                except TimeoutError:
                    if self.deadline_s - (time.monotonic() - started) <= 0:
                        raise _DeadlinePassed() from None
                    raise
                if not chunk:
                    break
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise _ResponseTooLarge()
                chunks.append(chunk)
        body = b"".join(chunks)
        if declared is not None and declared.isdigit() and len(body) < int(declared):
            raise http.client.IncompleteRead(body, int(declared) - len(body))
        return body

    def _answers(self, payload: bytes, n: int) -> np.ndarray:
        try:
            document = json.loads(payload)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InvalidAuditInput(
                f"HTTP target {self.shown_url}: the response is not JSON ({payload[:80]!r})"
            ) from None
        if not isinstance(document, dict) or self.response_key not in document:
            keys = sorted(document) if isinstance(document, dict) else type(document).__name__
            raise InvalidAuditInput(
                f"HTTP target {self.shown_url}: the response has no {self.response_key!r} "
                f"(it has {keys}); set response_key"
            )
        try:
            answers = np.asarray(document[self.response_key], dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidAuditInput(
                f"HTTP target {self.shown_url}: {self.response_key!r} is not a numeric array"
            ) from None
        if len(answers) != n:
            raise InvalidAuditInput(
                f"HTTP target {self.shown_url}: sent {n} records, got {len(answers)} answers"
            )
        if answers.ndim == 1 and np.isfinite(answers).all() and (answers == answers.round()).all():
            return answers.astype(np.int64)  # predicted labels
        return answers


def _set_read_timeout(response, seconds: float) -> None:
    """Bound the next socket read of ``response`` (http.client keeps the socket in
    ``fp.raw._sock``; where it does not, the opening timeout stays in force)."""
    sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
    if sock is not None:
        sock.settimeout(max(seconds, 0.001))


def _retry_after(header: str | None, default: float) -> float:
    """Seconds a ``Retry-After`` header asks for (delta-seconds form), capped at a minute."""
    try:
        return min(60.0, max(0.0, float(header))) if header is not None else default
    except ValueError:
        return default


def http_target(
    url: str,
    *,
    n_classes: int,
    output: str = "probabilities",
    description: str = "",
    **options,
) -> CallableTarget:
    """A :class:`CallableTarget` answering through :class:`HttpPredictor` (``options``)."""
    predictor = HttpPredictor(url, **options)
    return CallableTarget(
        predictor,
        n_classes=n_classes,
        output=output,
        description=description or f"prediction API at {predictor.shown_url}",
    )
