"""PUBLISH (RFC 3903 §6) at ``sipactors serve`` over real UDP and a real SQLite file: a valid PIDF gets 200
with a SIP-ETag and Expires, a bad PIDF gets 400 naming the problem, and after ``kill -9`` and a restart a
refresh with the old entity-tag still gets 200 (the publication was stored before the 200)."""

from __future__ import annotations

import signal
from pathlib import Path

from sipactors.message import Response
from tests.e2e.test_registrar import _exchange
from tests.e2e.test_serve import start_server, stop_server

PIDF = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@127.0.0.1">'
        b'<tuple id="t1"><status><basic>open</basic></status><contact>sip:alice@127.0.0.1</contact></tuple>'
        b"</presence>")


def _publish(port: int, cseq: int, body: bytes = b"", *, if_match: str | None = None, expires: int = 600) -> bytes:
    lines = [
        "PUBLISH sip:alice@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKpub{cseq};rport",
        "Max-Forwards: 70",
        "To: <sip:alice@127.0.0.1>",
        "From: <sip:alice@127.0.0.1>;tag=pub",
        "Call-ID: publish-e2e",
        f"CSeq: {cseq} PUBLISH",
        "Event: presence",
        f"Expires: {expires}",
    ]
    if if_match is not None:
        lines.append(f"SIP-If-Match: {if_match}")
    if body:
        lines.append("Content-Type: application/pidf+xml")
    return ("\r\n".join([*lines, f"Content-Length: {len(body)}", "", ""])).encode() + body


def test_publish_stores_refuses_bad_pidf_and_survives_kill_9_rfc3903_6(tmp_path: Path) -> None:
    store = tmp_path / "sipactors.db"
    port, process, banner = start_server(store)
    try:
        assert any("PUBLISH" in line for line in banner if line.startswith("allow:")), banner
        first = _exchange(port, _publish(port, 1, PIDF))
        assert isinstance(first, Response) and first.status == 200
        etag = first.header("SIP-ETag")
        assert etag and first.header("Expires") == 600
        bad = _exchange(port, _publish(port, 2, PIDF.replace(b"open", b"maybe")))
        assert isinstance(bad, Response) and bad.status == 400 and bad.reason == "Bad PIDF: basic Must Be open or closed"
        unknown = _exchange(port, _publish(port, 3, if_match="no-such-tag"))
        assert isinstance(unknown, Response) and unknown.status == 412
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        port, process, _ = start_server(store)
        refreshed = _exchange(port, _publish(port, 4, if_match=etag))
        assert isinstance(refreshed, Response) and refreshed.status == 200
        assert refreshed.header("SIP-ETag") not in (None, etag)  # §6 step 6: a new tag for every success
        stale = _exchange(port, _publish(port, 5, if_match=etag))
        assert isinstance(stale, Response) and stale.status == 412  # the old tag was replaced
    finally:
        stop_server(process)
