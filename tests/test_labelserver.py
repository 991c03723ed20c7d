"""The labelling server over real HTTP on 127.0.0.1: what it serves, what it saves, and what it refuses."""

from __future__ import annotations

import http.client
import json
import re

import pytest
from labelstudy import copy_study

from gimg.errors import GimgError
from gimg.labelserver import make_label_server
from gimg.layout import Layout
from gimg.localengine import serving
from gimg.options import SampleOptions, ServeOptions
from gimg.validation import draw_sample, read_labels


@pytest.fixture
def site(label_study, tmp_path):
    out = copy_study(label_study, tmp_path / "out")
    sample = draw_sample(out, SampleOptions(n=8))
    with serving(make_label_server(out, ServeOptions(rater="ana"))) as url:
        yield {"out": out, "sample": sample, "port": int(url.rsplit(":", 1)[1])}


def request(site, method, path, body=None, **headers):
    """One request with exactly these headers (Host and, for a body, Origin and Content-Type default to the page's)."""
    connection = http.client.HTTPConnection("127.0.0.1", site["port"], timeout=10)
    own = f"127.0.0.1:{site['port']}"
    sent = {"Host": own}
    data = None
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        sent |= {"Origin": f"http://{own}", "Content-Type": "application/json"}
    sent |= {name.replace("_", "-"): value for name, value in headers.items() if value is not None}
    for name in [name.replace("_", "-") for name, value in headers.items() if value is None]:
        sent.pop(name, None)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for name, value in sent.items():
        connection.putheader(name, value)
    if data is not None:
        connection.putheader("Content-Length", str(len(data)))
    connection.endheaders(data)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), payload


def labels_on_disk(site):
    folder = Layout(site["out"]).labels
    return sorted(path.name for path in folder.glob("*.csv")) if folder.exists() else []


def test_page_is_local_and_locked_down(site):
    status, headers, body = request(site, "GET", "/")
    assert status == 200
    page = body.decode()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    for asset in ("/label.js", "/label.css"):
        status, _, script = request(site, "GET", asset)
        assert status == 200 and b"http://" not in script and b"https://" not in script


def test_state_hides_the_prediction_and_the_term(site):
    status, _, body = request(site, "GET", "/api/state?rater=ana")
    state = json.loads(body)
    assert status == 200 and state["items"] == site["sample"]["item"].tolist()
    text = body.decode()
    for secret in ("predicted", "p_female", "nurse", "electrician", "cashier", "Cropped_faces"):
        assert secret not in text


def test_images_are_served_by_item_only(site):
    item = site["sample"]["item"].iloc[0]
    crop = (site["out"] / site["sample"]["crop"].iloc[0]).read_bytes()
    assert request(site, "GET", f"/crop/{item}.jpg")[2] == crop
    status, headers, boxed = request(site, "GET", f"/image/{item}.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and boxed[:2] == b"\xff\xd8"
    for path in ("/crop/../../terms.csv", "/crop/..%2F..%2Fterms.csv.jpg", "/image/nope.jpg",
                 "/crop/%2e%2e/validation/sample.csv.jpg", "/../../etc/passwd", "/validation/sample.csv"):
        assert request(site, "GET", path)[0] == 404, path


def test_an_answer_is_saved_at_once_and_undone(site):
    items = site["sample"]["item"].tolist()
    status, _, body = request(site, "POST", "/api/label", {"rater": "ana", "item": items[0], "label": "not_a_face"})
    assert status == 200 and json.loads(body)["answers"] == {items[0]: "not_a_face"}
    assert read_labels(site["out"])[["item", "rater", "label"]].values.tolist() == [[items[0], "ana", "not_a_face"]]
    request(site, "POST", "/api/label", {"rater": "ben", "item": items[1], "label": "male"})
    status, _, body = request(site, "POST", "/api/undo", {"rater": "ana"})
    assert json.loads(body)["undone"] == items[0] and json.loads(body)["answers"] == {}
    assert read_labels(site["out"])[["item", "rater"]].values.tolist() == [[items[1], "ben"]]


@pytest.mark.parametrize(("body", "headers", "status", "message"), [
    ({"rater": "ana", "item": "nope", "label": "female"}, {}, 400, "unknown item"),
    ({"rater": "ana", "item": "{item}", "label": "woman"}, {}, 400, "unknown label"),
    ({"rater": "../../ana", "item": "{item}", "label": "female"}, {}, 400, "not a safe file name"),
    ({"rater": "ana", "item": "{item}", "label": "female"}, {"Origin": "http://evil.example"}, 403, "origin"),
    ({"rater": "ana", "item": "{item}", "label": "female"}, {"Origin": None}, 403, "origin"),
    ({"rater": "ana", "item": "{item}", "label": "female"}, {"Host": "evil.example"}, 403, "own address"),
    ({"rater": "ana", "item": "{item}", "label": "female"}, {"Content-Type": "text/plain"}, 415, "application/json"),
    (b"not json", {}, 400, "JSON object"),
    (b"x" * 5000, {}, 413, "bytes"),
])
def test_bad_requests_are_refused_and_nothing_is_written(site, body, headers, status, message):
    if isinstance(body, dict):
        body = {key: value.format(item=site["sample"]["item"].iloc[0]) for key, value in body.items()}
    got, _, payload = request(site, "POST", "/api/label", body, **headers)
    assert got == status and message in json.loads(payload)["error"]
    assert labels_on_disk(site) == []


def test_a_rebound_host_cannot_read_the_page(site):
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1 sends Host: evil.example."""
    for path in ("/", "/api/state?rater=ana", f"/crop/{site['sample']['item'].iloc[0]}.jpg"):
        assert request(site, "GET", path, Host=f"evil.example:{site['port']}")[0] == 403


def test_options_are_checked(label_study):
    with pytest.raises(GimgError, match="not a safe file name"):
        ServeOptions(rater="a/b")
    with pytest.raises(GimgError, match="--port must be between 0 and 65535"):
        ServeOptions(port=70000)
