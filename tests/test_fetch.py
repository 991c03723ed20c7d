"""The fetcher reads the environment once: a proxy or CA bundle named there is still used."""

from __future__ import annotations

from faultserver import encode, ok, photo, serve

from gimg.fetch import Fetcher, FetchOptions


def test_a_proxy_named_in_the_environment_carries_the_downloads(monkeypatch):
    body = encode(photo(0), "JPEG")
    with serve({"/0.jpg": ok(body)}) as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with Fetcher(FetchOptions(attempts=1, connect_timeout=2), per_host=2) as fetcher:
            assert fetcher.get("http://images.invalid/0.jpg") == body, "only the proxy can answer for that host"
    assert proxy.requests["/0.jpg"] == 1


def test_without_a_proxy_the_environment_is_not_read_for_each_request(monkeypatch):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    body = encode(photo(1), "JPEG")
    with serve({"/1.jpg": ok(body)}) as server, Fetcher(FetchOptions(), per_host=2) as fetcher:
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # set after the fetcher was made: not read
        assert fetcher.get(server.link("/1.jpg")) == body


def test_the_ca_bundle_named_in_the_environment_is_the_one_verified_against(monkeypatch, tmp_path):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "company-ca.pem"))
    with Fetcher(FetchOptions(), per_host=2) as fetcher:
        assert fetcher.session.verify == str(tmp_path / "company-ca.pem")
