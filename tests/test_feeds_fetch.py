"""Fetching feeds from a real HTTP server: conditional GETs, 304s, and every failure in one plain line."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from central.feeds.errors import FeedError
from central.feeds.fetch import HttpFetcher, Validators, feed_host, http_url
from tests.test_feeds_support import FeedServer, feed_server, ical

FETCH = HttpFetcher(timeout_s=2.0)


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with feed_server() as server:
        yield server


def failure(url: str, fetcher: HttpFetcher = FETCH) -> str:
    with pytest.raises(FeedError) as caught:
        fetcher(url, Validators())
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_conditional_get_with_the_etag_gets_304_and_no_body(server: FeedServer) -> None:
    url = server.serve("/rom/holmen-1.ics", ical("weekly_oslo.ics"))
    first = FETCH(url, Validators())
    assert first.body == ical("weekly_oslo.ics") and not first.not_modified
    assert first.validators.etag and first.validators.last_modified == "Wed, 20 Feb 2030 10:00:00 GMT"

    again = FETCH(url, first.validators)
    assert again.not_modified and again.body is None
    assert again.validators == first.validators
    assert server.requests[-1].if_none_match == first.validators.etag
    assert server.statuses("/rom/holmen-1.ics") == [200, 304]

    server.serve("/rom/holmen-1.ics", ical("utc_events.ics"))  # the calendar changed: a new ETag
    changed = FETCH(url, first.validators)
    assert changed.body == ical("utc_events.ics") and changed.validators.etag != first.validators.etag


def test_a_server_without_etags_is_asked_if_modified_since(server: FeedServer) -> None:
    url = server.serve("/vega.ics", ical("site_v1.ics"), etag=False)
    first = FETCH(url, Validators())
    assert first.validators == Validators(None, "Wed, 20 Feb 2030 10:00:00 GMT")
    assert FETCH(url, first.validators).not_modified
    assert server.requests[-1].if_modified_since == "Wed, 20 Feb 2030 10:00:00 GMT"
    assert server.requests[-1].if_none_match is None


def test_webcal_links_are_fetched_over_https_and_other_schemes_refused() -> None:
    assert http_url("webcal://kalender.asker.example/rom.ics") == "https://kalender.asker.example/rom.ics"
    for bad in ("file:///etc/passwd", "ftp://example.no/x.ics", "kalender.ics", "https://"):
        with pytest.raises(FeedError):
            http_url(bad)
    assert "must start with http://, https:// or webcal://" in failure("file:///etc/passwd")


@pytest.mark.parametrize(
    ("status", "words"),
    [
        (500, "answered HTTP 500 Internal Server Error (an error on the calendar server)"),
        (503, "answered HTTP 503 Service Unavailable (an error on the calendar server)"),
        (404, "answered HTTP 404 Not Found (there is no feed at this address)"),
        (403, "answered HTTP 403 Forbidden (the server does not allow this feed to be read"),
    ],
)
def test_http_errors_are_named_with_their_meaning(server: FeedServer, status: int, words: str) -> None:
    url = server.serve("/private-4f2a9c/basic.ics", b"", status=status)
    message = failure(url)
    assert message.startswith(f"127.0.0.1:{server.port} {words}")
    assert "private-4f2a9c" not in message  # the secret part of the address is never repeated


def test_a_server_that_does_not_answer_in_time_times_out(server: FeedServer) -> None:
    url = server.serve("/slow.ics", ical("weekly_oslo.ics"), delay_s=30)
    assert failure(url, HttpFetcher(timeout_s=0.3)) == f"no answer from 127.0.0.1:{server.port} within 0.3 s"


def test_a_feed_larger_than_the_limit_is_not_read(server: FeedServer) -> None:
    url = server.serve("/huge.ics", b"BEGIN:VCALENDAR\r\n" + b"X" * 300_000)
    message = failure(url, HttpFetcher(max_bytes=100_000))
    assert message == f"the feed from 127.0.0.1:{server.port} is larger than 100000 bytes; it was not read"


def test_nobody_listening_is_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = failure(f"http://127.0.0.1:{port}/x.ics")
    assert message == f"cannot connect to 127.0.0.1:{port}: connection refused"


def test_feed_host_never_shows_path_query_or_credentials() -> None:
    url = "https://user:pw@cal.example.no:8443/private/abc.ics?token=s3cret"
    assert feed_host(url) == "cal.example.no:8443"
