#!/usr/bin/env python3
"""A real SMTP server for hbd's notification tests, built on aiosmtpd.

Every message it accepts is written to DIR/NNNNNN.eml (numbered in arrival order,
continuing after a restart on the same folder), with the envelope and the session's TLS
and AUTH state in X-Sink-* header lines before the message itself. It prints
"ready PORT" on stdout once it accepts connections and runs until SIGTERM or SIGINT.

Modes: plain (no TLS), starttls (STARTTLS offered and required before MAIL), tls
(implicit TLS from the first byte). --auth USER:PASS requires AUTH (PLAIN/LOGIN).
"""

import argparse
import os
import signal
import ssl
import sys
import threading

try:
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword
except ImportError:
    sys.stderr.write(
        "smtp_sink.py needs the Python package aiosmtpd: python3 -m pip install aiosmtpd"
        " (or run: bash .ci/run)\n"
    )
    sys.exit(3)


class Sink:
    def __init__(self, folder):
        self.folder = folder
        self.lock = threading.Lock()

    def next_path(self):
        n = len([f for f in os.listdir(self.folder) if f.endswith(".eml")]) + 1
        return os.path.join(self.folder, "%06d.eml" % n)

    async def handle_DATA(self, server, session, envelope):
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        head = (
            "X-Sink-Mail-From: %s\r\n"
            "X-Sink-Rcpt-To: %s\r\n"
            "X-Sink-TLS: %s\r\n"
            "X-Sink-Auth: %s\r\n"
            % (
                envelope.mail_from,
                ", ".join(envelope.rcpt_tos),
                "yes" if server.transport.get_extra_info("ssl_object") is not None else "no",
                getattr(session, "sink_user", None) or "none",
            )
        ).encode()
        with self.lock:
            path = self.next_path()
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                f.write(head + content)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, path)
        return "250 Message accepted for delivery"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--mode", choices=["plain", "starttls", "tls"], default="plain")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--auth", help="USER:PASS required for AUTH")
    args = ap.parse_args()

    os.makedirs(args.dir, exist_ok=True)
    kwargs = {}
    if args.mode != "plain":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        if args.mode == "starttls":
            kwargs["tls_context"] = ctx
            kwargs["require_starttls"] = True
        else:
            kwargs["ssl_context"] = ctx
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            if ok:
                session.sink_user = user
            return AuthResult(success=ok, handled=False)

        kwargs["authenticator"] = authenticator
        kwargs["auth_required"] = True
        kwargs["auth_require_tls"] = args.mode != "plain"

    controller = Controller(
        Sink(args.dir),
        hostname="127.0.0.1",
        port=args.port,
        ready_timeout=10,
        **kwargs,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    controller.start()
    print("ready %d" % args.port, flush=True)
    done.wait()
    controller.stop()


if __name__ == "__main__":
    main()
