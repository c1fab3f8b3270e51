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
loopback on Linux) is chosen by connecting the socket ourselves and handing
it to websockets (`sock=`). The certificate is verified against the
throw-away one the script made (it carries subjectAltName IP:127.0.0.1).
Prints one PASS line per check; exits 1 on the first failure.
"""

import argparse
import faulthandler
import contextlib
import json
import socket
import ssl
import sys
import time
from urllib.parse import urlsplit

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

TIMEOUT = 10.0


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def passed(msg):
    print(f"PASS: {msg}", flush=True)


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
        """A wss:// client whose TCP connection to nginx leaves from `source`."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(TIMEOUT)
            sock.bind((source, 0))
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        return self.clients.enter_context(connect(
            self.url,
            sock=sock,
            ssl=self.tls,
            additional_headers=headers,
            open_timeout=TIMEOUT,
            close_timeout=2,
        ))

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
            got = ws.recv(timeout=TIMEOUT)
        except TimeoutError:
            fail(f"{uid} received nothing within {TIMEOUT:.0f} s of the push")
        if got != line:
            fail(f"{uid} received {got!r}, expected {line!r}")
        return line

    def bind(self, source, uid, headers=None):
        try:
            ws = self.open_ws(source, headers)
        except InvalidStatus as e:
            fail(f"client from {source} refused with HTTP {e.response.status_code}, expected 101")
        ws.send(uid)
        self.wait_online(uid, 1)
        return ws

    def refused_with(self, source):
        """The HTTP status a refused upgrade got; fails if it was accepted."""
        try:
            ws = self.open_ws(source)
        except InvalidStatus as e:
            return e.response.status_code
        ws.close()
        fail(f"a client from {source} was upgraded (101), expected a refusal")


def check_push(env):
    ws = env.bind("127.0.0.5", "u1")
    line = env.push_and_receive(ws, "u1", "over tls")
    version = ws.socket.version()
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
        except InvalidStatus as e:
            if time.monotonic() > deadline:
                fail(f"127.0.0.2 still refused (HTTP {e.response.status_code}) "
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
