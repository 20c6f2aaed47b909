"""Fetching a feed over HTTP(S): a conditional GET bounded in time and size, failures in plain words.

The standard library's urllib is enough (one GET at a time from a background thread) and keeps the
runtime free of another HTTP client. `webcal://` links, which calendar apps hand out, mean HTTPS. Feed URLs
often carry a private token, so only the host ever appears in messages and logs.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit, urlunsplit

from central.feeds.errors import FeedError

DEFAULT_TIMEOUT_S = 15.0
DEFAULT_MAX_BYTES = 5 * 1024 * 1024
USER_AGENT = "meraapent-central (booking feed import)"
CHUNK = 64 * 1024
MAX_ETAG = 300  # the booking_feeds columns' sizes
MAX_LAST_MODIFIED = 64


@dataclass(frozen=True)
class Validators:
    """What the server said identifies this version of the feed; sent back to ask "changed since?"."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Fetched:
    """A fetch's outcome: the body, or None when the server said 304 Not Modified."""

    body: bytes | None
    validators: Validators

    @property
    def not_modified(self) -> bool:
        return self.body is None


Fetcher = Callable[[str, Validators], Fetched]


def http_url(url: str) -> str:
    """The URL to GET: http or https (webcal means https); anything else is refused."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("webcal", "webcals"):
        parts = parts._replace(scheme="https")
    elif scheme not in ("http", "https"):
        raise FeedError(f"the feed address must start with http://, https:// or webcal:// (got {url[:40]!r})")
    if not parts.hostname:
        raise FeedError("the feed address has no host name")
    return urlunsplit(parts)


def feed_host(url: str) -> str:
    """The host (and port) of a feed URL, for messages: never the path or query, which may hold a token."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or "?"
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return "?"


@dataclass(frozen=True)
class HttpFetcher:
    """GET a feed with If-None-Match / If-Modified-Since; at most `timeout_s` in all and `max_bytes`."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    max_bytes: int = DEFAULT_MAX_BYTES

    def __call__(self, url: str, validators: Validators) -> Fetched:
        target = http_url(url)
        host = feed_host(target)
        headers = {"User-Agent": USER_AGENT, "Accept": "text/calendar"}
        request = urllib.request.Request(target, headers=headers)  # noqa: S310 (http_url allows http(s) only)
        if validators.etag:
            request.add_header("If-None-Match", validators.etag)
        if validators.last_modified:
            request.add_header("If-Modified-Since", validators.last_modified)
        deadline = time.monotonic() + self.timeout_s
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 (as above)
                body = self._read(response, host, deadline)
                return Fetched(body, _validators(response.headers, Validators()))
        except urllib.error.HTTPError as exc:
            if exc.code == 304:
                return Fetched(None, _validators(exc.headers, validators))
            raise FeedError(_http_status_message(host, exc.code, exc.reason)) from None
        except urllib.error.URLError as exc:
            reason = exc.reason if isinstance(exc.reason, BaseException) else OSError(str(exc.reason))
            raise FeedError(_network_message(host, reason, self.timeout_s)) from None
        except (OSError, http.client.HTTPException) as exc:
            raise FeedError(_network_message(host, exc, self.timeout_s)) from None

    def _read(self, response: IO[bytes], host: str, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while chunk := response.read(CHUNK):
            size += len(chunk)
            if size > self.max_bytes:
                limit = _size(self.max_bytes)
                raise FeedError(f"the feed from {host} is larger than {limit}; it was not read")
            if time.monotonic() > deadline:
                raise FeedError(f"{host} did not send the whole feed within {self.timeout_s:g} s")
            chunks.append(chunk)
        return b"".join(chunks)


def _validators(headers: object, fallback: Validators) -> Validators:
    get = getattr(headers, "get", None)
    if get is None:
        return fallback
    etag, modified = _header(get("ETag"), MAX_ETAG), _header(get("Last-Modified"), MAX_LAST_MODIFIED)
    return Validators(etag or fallback.etag, modified or fallback.last_modified)


def _header(value: object, limit: int) -> str | None:
    """A validator worth keeping: printable and short enough to store (else we just fetch in full)."""
    if not isinstance(value, str) or not value or len(value) > limit or not value.isprintable():
        return None
    return value


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB" if n >= 1024 * 1024 else f"{n} bytes"


_STATUS_HINTS = {
    401: "the feed needs a login, or its private link has expired",
    403: "the server does not allow this feed to be read, or its private link has expired",
    404: "there is no feed at this address",
    410: "the feed has been removed",
    429: "the server asks us to poll less often",
}


def _http_status_message(host: str, code: int, reason: object) -> str:
    words = str(reason or "").strip()
    hint = _STATUS_HINTS.get(code) or ("an error on the calendar server" if code >= 500 else "")
    head = f"{host} answered HTTP {code}" + (f" {words}" if words else "")
    return f"{head} ({hint})" if hint else head


def _network_message(host: str, exc: BaseException, timeout_s: float) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"no answer from {host} within {timeout_s:g} s"
    if isinstance(exc, socket.gaierror):
        return f"cannot find the server {host} (DNS lookup failed)"
    if isinstance(exc, ConnectionRefusedError):
        return f"cannot connect to {host}: connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the secure connection to {host} failed: its certificate is not valid ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"the secure connection to {host} failed ({exc.reason or exc})"
    if isinstance(exc, http.client.RemoteDisconnected | ConnectionResetError):
        return f"{host} closed the connection before sending the feed"
    if isinstance(exc, http.client.HTTPException):
        return f"{host} sent a broken HTTP answer ({type(exc).__name__})"
    detail = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"cannot reach {host}: {detail}"
