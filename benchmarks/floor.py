"""The CPython floor under the bench harness: the least a SIP server written in Python can do per message.

    python benchmarks/floor.py [--port 5080]          # then, e.g.: bench/maxrate.sh register 127.0.0.1 5080 2000

NOT a SIP server, and never used by sipactors: a calibration for the Kamailio ratios in the issues. One
blocking UDP loop on one thread that answers the harness's REGISTER with a 200 (its Contact kept in a dict,
nothing validated, no transaction, nothing written to disk) and relays its MESSAGE to the registered UAS and
the UAS's 200 back (a Via pushed and popped, statelessly). Whatever rate this reaches under
``../shared/bench`` is the ceiling of any CPython server on that core, so ``floor / Kamailio`` bounds the
ratio a real one can reach: sipactors parses and validates every header it needs, runs a transaction
actor and a table machine per request and commits every binding to SQLite before it answers.
"""

from __future__ import annotations

import argparse
import socket


def serve(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind(("127.0.0.1", port))
    contacts: dict[str, tuple[str, int]] = {}
    via = f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-floor-"
    count = 0
    while True:
        data, source = sock.recvfrom(65_536)
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("utf-8", "replace").split("\r\n")
        start = lines[0]
        if start.startswith("SIP/2.0"):  # a response from the UAS: pop our Via, send it up the next one
            first = lines[1]  # our Via, alone on its line or first of a comma-separated list
            rest = lines[2:] if "," not in first else ["Via: " + first.split(",", 1)[1].strip(), *lines[2:]]
            up = next(line for line in rest if line.startswith("Via:"))
            host, _, port_text = up.split()[2].split(";")[0].partition(":")
            sock.sendto("\r\n".join([start, *rest]).encode() + b"\r\n\r\n" + body, (host, int(port_text or 5060)))
            continue
        method = start.split(" ", 1)[0]
        if method == "REGISTER":
            to = next(line for line in lines if line.startswith("To:"))
            contact = next(line for line in lines if line.startswith("Contact:"))
            address = contact[contact.index("sip:") + 4 : contact.index(">")].split("@")[-1]
            host, _, port_text = address.partition(":")
            contacts[to[to.index("sip:") + 4 : to.index("@")]] = (host, int(port_text or 5060))
            copied = [line for line in lines[1:] if line.split(":", 1)[0] in ("Via", "From", "Call-ID", "CSeq")]
            answer = ["SIP/2.0 200 OK", *copied, to + ";tag=floor", contact + ";expires=3600", "Content-Length: 0"]
            sock.sendto("\r\n".join(answer).encode() + b"\r\n\r\n", source)
        else:  # a request for a registered user: push our Via and relay it to the contact
            user = start.split("sip:", 1)[1].split("@", 1)[0]
            target = contacts.get(user)
            if target is None:
                continue
            count += 1
            sock.sendto("\r\n".join([start, f"{via}{count}", *lines[1:]]).encode() + b"\r\n\r\n" + body, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5080)
    serve(parser.parse_args().port)


if __name__ == "__main__":
    main()
