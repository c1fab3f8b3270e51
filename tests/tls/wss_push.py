"""wss:// clients for .ci/tls.sh: browsers' side of herald through nginx (TLS).

usage: wss_push.py push   --url wss://127.0.0.1:PORT/ --text PORT --ca CERT
       wss_push.py per-ip --url wss://127.0.0.1:PORT/ --text PORT --ca CERT

`push`: a client binds uid u1 over wss://, a backend pushes to it on the
text port and gets `ok`, the client receives the pushed line.
`per-ip` (herald run with --trusted-proxy 127.0.0.1 --max-per-ip 1): the
limit counts the address nginx forwards, not nginx's own.

herald counts text-port connections per IP too, so the backend keeps one
connection open, from 127.0.0.10, for all its lines.

Each client's source address (127.0.0.2, 127.0.0.3, ...: all of 127/8 is
loopback on Linux) is chosen by binding the socket before connecting. The
certificate is verified against the throw-away one the script made (it
carries subjectAltName IP:127.0.0.1). Prints one PASS line per check; exits 1
on the first failure.

The WebSocket client is the small single-threaded one below (`Wss`), not the
`websockets` package: its sync client reads the TLS socket in a second thread
while the first writes the upgrade request, and under TLS 1.3 (nginx sends
session tickets right after the handshake) that stalled now and then before
the request left (CI hung twice in the per-ip check's retry). Browsers are
covered by the Chromium check in .ci/tls.sh.
"""

import argparse
import base64
import contextlib
import faulthandler
import hashlib
import json
import os
import socket
import ssl
import struct
import sys
import time
from urllib.parse import urlsplit

TIMEOUT = 10.0


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def passed(msg):
    print(f"PASS: {msg}", flush=True)


class Refused(Exception):
    """The upgrade was answered with a status other than 101."""

    def __init__(self, status):
        super().__init__(f"HTTP {status}")
        self.status = status


class Wss:
    """One wss:// client: upgrade, masked text frames out, frames in."""

    GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

    def __init__(self, tls_sock):
        self.sock = tls_sock
        self.buf = b""

    @classmethod
    def open(cls, sock, host, port, headers):
        key = base64.b64encode(os.urandom(16))
        lines = ["GET / HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket",
                 "Connection: Upgrade", f"Sec-WebSocket-Key: {key.decode()}",
                 "Sec-WebSocket-Version: 13"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        ws = cls(sock)
        head = ws._read_until(b"\r\n\r\n").decode("latin-1")
        status = int(head.split(" ", 2)[1])
        if status != 101:
            sock.close()
            raise Refused(status)
        want = base64.b64encode(hashlib.sha1(key + cls.GUID).digest()).decode()
        fields = {k.strip().lower(): v.strip() for k, _, v in
                  (line.partition(":") for line in head.split("\r\n")[1:] if line)}
        if fields.get("sec-websocket-accept") != want:
            fail(f"101 with Sec-WebSocket-Accept {fields.get('sec-websocket-accept')!r}, "
                 f"expected {want!r}")
        return ws

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the connection closed")
        self.buf += data

    def _read_until(self, sep):
        while sep not in self.buf:
            self._fill()
        head, _, self.buf = self.buf.partition(sep)
        return head

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(head + mask + body)

    def send(self, text):
        self._send_frame(0x1, text.encode())

    def recv(self, timeout):
        """The next text message; answers pings; None when closed."""
        self.sock.settimeout(timeout)
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8))
            payload = self._read(n)
            opcode = b0 & 0x0F
            if opcode == 0x1:
                return payload.decode()
            if opcode == 0x9:
                self._send_frame(0xA, payload)
            elif opcode == 0x8:
                return None

    def close(self):
        """A close handshake (1000), then the socket closed."""
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
            deadline = time.monotonic() + 2
            while time.monotonic() < deadline:
                if self.recv(max(0.01, deadline - time.monotonic())) is None:
                    break
        except (OSError, ConnectionError):
            pass
        self.sock.close()


class Env:
    def __init__(self, args):
        self.url = args.url
        u = urlsplit(args.url)
        self.host, self.port = u.hostname, u.port
        self.text = args.text
        self.tls = ssl.create_default_context(cafile=args.ca)
        self.tls.minimum_version = ssl.TLSVersion.TLSv1_2
        self.backend = None
        # Closes every client still open when the check ends.
        self.clients = contextlib.ExitStack()

    def open_ws(self, source, headers=None):
        """A wss:// client whose TCP connection to nginx leaves from `source`;
        raises Refused with the status of an upgrade answered otherwise."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(TIMEOUT)
            sock.bind((source, 0))
            sock.connect((self.host, self.port))
            sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            ws = Wss.open(sock, self.host, self.port, headers)
        except socket.timeout:
            sock.close()
            fail(f"the upgrade from {source} got no answer within {TIMEOUT:.0f} s")
        except OSError:
            sock.close()
            raise
        self.clients.callback(ws.close)
        return ws

    def text_port(self, obj):
        """One line to the text port, as a backend writes it; its reply line."""
        if self.backend is None:
            s = socket.create_connection(("127.0.0.1", self.text), timeout=TIMEOUT,
                                         source_address=("127.0.0.10", 0))
            self.backend = (s, s.makefile("rb"))
        s, replies = self.backend
        line = json.dumps(obj, separators=(",", ":"))
        s.sendall(line.encode() + b"\n")
        reply = replies.readline()
        if not reply:
            fail(f"the text port closed the connection instead of answering {line}")
        return line, reply.decode().strip()

    def wait_online(self, uid, n):
        """Until herald reports `n` connections bound to `uid`."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            _, reply = self.text_port({"online": uid})
            if reply == str(n):
                return
            if time.monotonic() > deadline:
                fail(f"{uid} has {reply} connections after {TIMEOUT:.0f} s, expected {n}")
            time.sleep(0.05)

    def push_and_receive(self, ws, uid, msg):
        line, reply = self.text_port({"uid": uid, "msg": msg})
        if reply != "ok":
            fail(f"push to {uid} replied {reply!r}, expected 'ok'")
        try:
            got = ws.recv(TIMEOUT)
        except socket.timeout:
            fail(f"{uid} received nothing within {TIMEOUT:.0f} s of the push")
        if got != line:
            fail(f"{uid} received {got!r}, expected {line!r}")
        return line

    def bind(self, source, uid, headers=None):
        try:
            ws = self.open_ws(source, headers)
        except Refused as e:
            fail(f"client from {source} refused with HTTP {e.status}, expected 101")
        ws.send(uid)
        self.wait_online(uid, 1)
        return ws

    def refused_with(self, source):
        """The HTTP status a refused upgrade got; fails if it was accepted."""
        try:
            ws = self.open_ws(source)
        except Refused as e:
            return e.status
        ws.close()
        fail(f"a client from {source} was upgraded (101), expected a refusal")


def check_push(env):
    ws = env.bind("127.0.0.5", "u1")
    line = env.push_and_receive(ws, "u1", "over tls")
    version = ws.sock.version()
    passed(f"wss:// through nginx ({version}, certificate verified): u1 bound, "
           f"text port answered ok, client received {line}")
    ws.close()
    # u1 is gone before the next check starts.
    env.wait_online("u1", 0)


def check_per_ip(env):
    a = env.bind("127.0.0.2", "ip2")
    b = env.bind("127.0.0.3", "ip3")
    env.push_and_receive(a, "ip2", "to .2")
    env.push_and_receive(b, "ip3", "to .3")
    passed("--max-per-ip 1 behind nginx: clients from 127.0.0.2 and 127.0.0.3 "
           "both accepted and bound at once (each counted by its forwarded address)")

    status = env.refused_with("127.0.0.2")
    if status != 503:
        fail(f"a second client from 127.0.0.2 got HTTP {status}, expected 503")
    passed("a second simultaneous client from 127.0.0.2 is refused with HTTP 503 "
           "before any 101 (passed through by nginx)")

    # A client cannot pick the address it is counted as: nginx appends the
    # real one, herald takes the rightmost untrusted entry.
    env.bind("127.0.0.4", "ip4", headers={"X-Forwarded-For": "127.0.0.3"})
    passed("a client's own X-Forwarded-For: 127.0.0.3 is ignored: the client "
           "from 127.0.0.4 is counted as 127.0.0.4 and accepted")

    a.close()
    env.wait_online("ip2", 0)
    # herald releases the count when it reaps the connection, which may be
    # a moment after the uid is unbound.
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            d = env.open_ws("127.0.0.2")
            break
        except Refused as e:
            if time.monotonic() > deadline:
                fail(f"127.0.0.2 still refused (HTTP {e.status}) "
                     f"{TIMEOUT:.0f} s after its client left")
            time.sleep(0.05)
    d.send("ip2b")
    env.wait_online("ip2b", 1)
    passed("the count is released when the client leaves: 127.0.0.2 accepted again")


def main():
    # A hang prints every thread's stack before .ci/tls.sh's timeout (30 s).
    faulthandler.dump_traceback_later(25, exit=False)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("check", choices=["push", "per-ip"])
    p.add_argument("--url", required=True, help="wss://127.0.0.1:PORT/ (nginx)")
    p.add_argument("--text", type=int, required=True, help="herald's text port")
    p.add_argument("--ca", required=True, help="the certificate nginx serves")
    args = p.parse_args()
    env = Env(args)
    with env.clients:
        {"push": check_push, "per-ip": check_per_ip}[args.check](env)


if __name__ == "__main__":
    main()
