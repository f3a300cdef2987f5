"""Driving baresip 1.0 (Debian baresip-core) from a test: no sound device, and a control channel.

Audio: the g711 codec, a WAV file of silence as the source (``aufile``; baresip's ``ausine`` makes 48 kHz
only, which PCMU at 8 kHz cannot take) and ``/dev/null`` as the player. The file lasts longer than any test:
when it ends, baresip hangs the call up.

Control: the ``ctrl_tcp`` module on a TCP port of 127.0.0.1, speaking netstrings (``LEN:JSON,``): a command
``{"command": "dial", "params": "sip:...", "token": "..."}`` runs one of the ``menu`` module's long commands
(``dial``, ``hangup``, ``quit``), and every user-agent event comes back as ``{"event": true, "type":
"CALL_ESTABLISHED", ...}`` (REGISTER_OK, CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED, ...).

Presence and instant messages (``contacts=``): the ``contact`` module reads the ``contacts`` file (a line
``"Bob" <sip:bob@HOST:PORT>;presence=p2p`` makes the ``presence`` module SUBSCRIBE to Bob, Event: presence,
Accept: application/pidf+xml, Expires: 600, one second after it loads, with the first account); the
``contacts`` command lists each contact with its presence (Unknown until a NOTIFY with a PIDF body: Online
for ``<basic>open</basic>``, Offline otherwise). An account with ``;pubint=N`` PUBLISHes its own state
(PIDF, Event: presence, Expires: N) when the module loads; ``presence_offline``/``presence_online`` PUBLISH
``closed``/``open`` with SIP-If-Match, and quitting removes the publication (Expires: 0). ``message TEXT``
sends a MESSAGE (text/plain) to the current contact: the first of the file. baresip 1.0 has no event for
an incoming MESSAGE: the ``menu`` module prints ``PEER: "TEXT"`` through the user-interface modules only,
hence ``stdio`` here, whose output is baresip's standard output.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

BARESIP = shutil.which("baresip")

def config(audio_source: str = "/dev/null", control_port: int | None = None, presence: bool = False) -> str:
    """baresip's configuration: SIP and media on 127.0.0.1 (a free port), no sound device (the g711 codec,
    a file for audio in, /dev/null for audio out), the account module, and with ``control_port`` the
    ``menu`` commands over ``ctrl_tcp`` on that port. With ``presence`` the contact and presence modules
    (after the account module: the presence module publishes for the accounts loaded before it) and the
    ``stdio`` user interface, which prints incoming MESSAGEs."""
    lines = [
        "sip_listen\t\t127.0.0.1:0", "net_interface\t\t127.0.0.1", "module_path\t\t/usr/lib/baresip/modules", "module\t\t\tg711.so",
        "module\t\t\taufile.so", "module_app\t\taccount.so", "audio_player\t\taufile,/dev/null",
        f"audio_source\t\taufile,{audio_source}",
    ]
    if presence:  # the alert device plays message.wav when a MESSAGE comes
        lines += ["audio_alert\t\taufile,/dev/null", "module\t\t\tstdio.so", "module_app\t\tcontact.so",
                  "module_app\t\tpresence.so"]
    if control_port is not None:
        lines += ["module_app\t\tmenu.so", "module_app\t\tctrl_tcp.so", f"ctrl_tcp_listen\t\t127.0.0.1:{control_port}"]
    return "\n".join(lines) + "\n"


#: Seconds of silence in the audio source: more than a test lasts (baresip ends a call when its file ends).
SILENCE_SECONDS = 60


def _free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds now (the OS picks it; baresip binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: What baresip 1.0 prints when a REGISTER got its 200: ``bob@HOST: {0/UDP/v4} 200 OK () [1 binding]``.
REGISTERED = re.compile(r"200 OK .*\[\d+ bindings?\]")
#: A contact's presence in the ``contacts`` command's answer: ``>     Online Bob <sip:bob@HOST:PORT>``.
_PRESENCE = re.compile(r"(Unknown|Online|Offline|Busy) .*<([^>]+)>")
_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # colours of baresip's output


class Baresip:
    """One baresip process with one account, controlled over ``ctrl_tcp``; its output goes to
    ``home/output.txt``. Use as a context manager: leaving it stops the process (by its PID).

    With ``contacts`` (lines of the ``contacts`` file) the presence and contact modules are loaded and the
    account is in the ``accounts`` file: the presence module finds its accounts when it loads, before any
    command could add one. Its REGISTER may then be answered before the control connection is up: wait for
    :data:`REGISTERED` in the output rather than for a REGISTER_OK event."""

    def __init__(self, home: Path, account: str, contacts: list[str] | None = None) -> None:
        self.home = home
        self.account = account
        self.contacts = contacts
        self.events: list[dict[str, Any]] = []
        self.responses: dict[str, str] = {}
        self._buffer = b""
        self._token = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None

    def __enter__(self) -> Baresip:
        assert BARESIP is not None
        self.home.mkdir()
        silence = self.home / "silence.wav"
        with wave.open(str(silence), "wb") as audio:
            audio.setnchannels(1)
            audio.setsampwidth(2)
            audio.setframerate(8000)
            audio.writeframes(b"\0\0" * 8000 * SILENCE_SECONDS)
        control_port = _free_tcp_port()
        presence = self.contacts is not None
        (self.home / "config").write_text(config(str(silence), control_port, presence))
        # without contacts the account comes by command, once the control is connected
        (self.home / "accounts").write_text(self.account + "\n" if presence else "")
        if self.contacts is not None:
            (self.home / "contacts").write_text("".join(line + "\n" for line in self.contacts))
        with (self.home / "output.txt").open("wb") as output:
            # stdio reads its standard input: a pipe nobody writes to (at the end of /dev/null it would
            # read nothing forever)
            self._process = subprocess.Popen(
                [BARESIP, "-f", str(self.home)], stdin=subprocess.PIPE if presence else subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while self._control is None:
            try:
                self._control = socket.create_connection(("127.0.0.1", control_port), timeout=1)
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"baresip's control port did not open:\n{self.output()}") from None
                time.sleep(0.05)  # baresip gives no other sign that it listens
        if not presence:
            self.command("uanew", self.account)  # registers now (if regint): its events come to this connection
        return self

    def __exit__(self, *exc: object) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            try:
                self.command("quit")
                process.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                process.kill()
                process.wait(timeout=5)
        if self._control is not None:
            self._control.close()
        if process is not None and process.stdin is not None:
            process.stdin.close()

    def output(self) -> str:
        """What baresip printed so far."""
        return (self.home / "output.txt").read_text(errors="replace")

    def command(self, name: str, params: str = "") -> str:
        """Send a long command (``dial``, ``hangup``, ``quit``, ``message``, ...); its token."""
        assert self._control is not None
        self._token += 1
        body = json.dumps({"command": name, "params": params, "token": str(self._token)}).encode()
        self._control.sendall(b"%d:%s," % (len(body), body))
        return str(self._token)

    def request(self, name: str, params: str = "", timeout: float = 10) -> str:
        """Run a command and return what it printed (its response over the control connection), without
        the colour escapes; events that come meanwhile are kept for :meth:`wait_for`."""
        token = self.command(name, params)
        deadline = time.monotonic() + timeout
        while token not in self.responses:
            self._receive(deadline, f"the answer to {name}")
        return _ESCAPE.sub("", self.responses.pop(token))

    def presence(self, uri: str) -> str:
        """The presence baresip shows for the contact ``uri``: Unknown, Online, Offline or Busy."""
        listed = self.request("contacts")
        for status, contact in _PRESENCE.findall(listed):
            if contact == uri:
                return str(status)
        raise AssertionError(f"{uri} is not among baresip's contacts:\n{listed}")

    def wait_presence(self, uri: str, status: str, timeout: float = 15) -> None:
        """Ask for the contacts until ``uri`` shows ``status`` (a bounded poll: baresip 1.0 sends no event
        when a contact's presence changes, and prints nothing for its first NOTIFY)."""
        deadline = time.monotonic() + timeout
        while (shown := self.presence(uri)) != status:
            if time.monotonic() > deadline:
                raise AssertionError(f"{uri} is {shown}, not {status}, after {timeout} s:\n{self.output()}")
            time.sleep(0.1)

    def wait_output(self, pattern: str | re.Pattern[str], timeout: float = 15) -> str:
        """The first match of ``pattern`` (a text, or a regular expression) in baresip's output, now or
        within ``timeout`` seconds (a bounded poll of the output file)."""
        expression = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        deadline = time.monotonic() + timeout
        while (found := expression.search(self.output())) is None:
            if time.monotonic() > deadline or (self._process is not None and self._process.poll() is not None):
                raise AssertionError(f"no {expression.pattern!r} in baresip's output:\n{self.output()}")
            time.sleep(0.1)
        return found.group(0)

    def wait_for(self, kind: str, timeout: float = 10, *, unless: str | None = None) -> dict[str, Any]:
        """The first event of type ``kind`` (REGISTER_OK, CALL_ESTABLISHED, CALL_CLOSED, ...) received, now or
        within ``timeout`` seconds; an AssertionError with the events and output seen if none comes, or if
        an event of type ``unless`` comes first (a call closed while waiting for it to be established)."""
        assert self._control is not None
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("type") == kind:
                    self.events.remove(event)
                    return event
                if unless is not None and event.get("type") == unless:
                    raise AssertionError(f"{unless} before {kind}: {event}\n{self.output()}")
            seen = len(self.events)
            self._receive(deadline, kind)

    def _receive(self, deadline: float, awaited: str) -> None:
        """Read what the control connection brings until ``deadline``; an AssertionError naming
        ``awaited`` when the deadline has passed or baresip closed the connection."""
        assert self._control is not None
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {awaited} from baresip; events: {self.events}\n{self.output()}")
        self._control.settimeout(left)
        try:
            data = self._control.recv(65536)
        except TimeoutError:
            return
        if not data:
            raise AssertionError(f"baresip closed its control connection before {awaited}:\n{self.output()}")
        self._buffer += data
        self._read_netstrings()

    def _read_netstrings(self) -> None:
        while b":" in self._buffer:
            length, rest = self._buffer.split(b":", 1)
            size = int(length)
            if len(rest) < size + 1:
                return
            message = json.loads(rest[:size])
            self._buffer = rest[size + 1:]  # the payload, then ","
            if message.get("event"):
                self.events.append(message)
            elif message.get("response"):
                self.responses[str(message.get("token"))] = str(message.get("data", ""))
