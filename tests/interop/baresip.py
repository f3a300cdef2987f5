"""Driving baresip 1.0 (Debian baresip-core) from a test: no sound device, and a control channel.

Audio: the g711 codec, a WAV file of silence as the source (``aufile``; baresip's ``ausine`` makes 48 kHz
only, which PCMU at 8 kHz cannot take) and ``/dev/null`` as the player. The file lasts longer than any test:
when it ends, baresip hangs the call up.

Control: the ``ctrl_tcp`` module on a TCP port of 127.0.0.1, speaking netstrings (``LEN:JSON,``): a command
``{"command": "dial", "params": "sip:...", "token": "..."}`` runs one of the ``menu`` module's long commands
(``dial``, ``hangup``, ``quit``), and every user-agent event comes back as ``{"event": true, "type":
"CALL_ESTABLISHED", ...}`` (REGISTER_OK, CALL_RINGING, CALL_ESTABLISHED, CALL_CLOSED, ...).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import wave
from pathlib import Path
from typing import Any

BARESIP = shutil.which("baresip")

def config(audio_source: str = "/dev/null", control_port: int | None = None) -> str:
    """baresip's configuration: SIP and media on 127.0.0.1 (a free port), no sound device (the g711 codec,
    a file for audio in, /dev/null for audio out), the account module, and with ``control_port`` the
    ``menu`` commands over ``ctrl_tcp`` on that port."""
    lines = [
        "sip_listen\t\t127.0.0.1:0", "net_interface\t\t127.0.0.1", "module_path\t\t/usr/lib/baresip/modules", "module\t\t\tg711.so",
        "module\t\t\taufile.so", "module_app\t\taccount.so", "audio_player\t\taufile,/dev/null",
        f"audio_source\t\taufile,{audio_source}",
    ]
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


class Baresip:
    """One baresip process with one account, controlled over ``ctrl_tcp``; its output goes to
    ``home/output.txt``. Use as a context manager: leaving it stops the process (by its PID)."""

    def __init__(self, home: Path, account: str) -> None:
        self.home = home
        self.account = account
        self.events: list[dict[str, Any]] = []
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
        (self.home / "config").write_text(config(str(silence), control_port))
        (self.home / "accounts").write_text("")  # the account comes by command, once the control is connected
        with (self.home / "output.txt").open("wb") as output:
            self._process = subprocess.Popen(
                [BARESIP, "-f", str(self.home)], stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 10
        while self._control is None:
            try:
                self._control = socket.create_connection(("127.0.0.1", control_port), timeout=1)
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"baresip's control port did not open:\n{self.output()}") from None
                time.sleep(0.05)  # baresip gives no other sign that it listens
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

    def output(self) -> str:
        """What baresip printed so far."""
        return (self.home / "output.txt").read_text(errors="replace")

    def command(self, name: str, params: str = "") -> None:
        """Send a long command (``dial``, ``hangup``, ``quit``, ...)."""
        assert self._control is not None
        self._token += 1
        body = json.dumps({"command": name, "params": params, "token": str(self._token)}).encode()
        self._control.sendall(b"%d:%s," % (len(body), body))

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
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} from baresip; events: {self.events}\n{self.output()}")
            self._control.settimeout(left)
            try:
                data = self._control.recv(65536)
            except TimeoutError:
                continue
            if not data:
                raise AssertionError(f"baresip closed its control connection before {kind}:\n{self.output()}")
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
