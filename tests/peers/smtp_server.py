#!/usr/bin/python3
"""A small SMTP server for postline's tests, built on aiosmtpd.

Run it with Debian's interpreter (/usr/bin/python3, which has aiosmtpd):

    /usr/bin/python3 tests/peers/smtp_server.py --port 0 --maildir /tmp/mail

The first line on stdout is JSON naming the port that was bound, e.g.
``{"port": 40123}`` (plus ``"cert"``/``"key"`` when --self-signed-dir made a
certificate). Nothing else is written to stdout, so a test may stop reading
after that line. Logs go to stderr. SIGTERM or SIGINT stops the server
cleanly (exit status 0).

What it records (only with --maildir DIR):
  DIR/<seq>.eml    the bytes of each accepted message, exactly as received
                   after SMTP dot-unstuffing (seq counts accepted messages
                   from 1).
  DIR/<seq>.json   the envelope: mail_from, rcpt_tos, peer, connection (the
                   id of the SMTP connection that carried it, counting from 1),
                   tls, auth_user, queue_id, seq.
  DIR/events.jsonl one JSON object per line, in order: "connection" (first
                   HELO/EHLO of a connection), "ehlo", "starttls", "auth"
                   (every AUTH command, with mechanism and whether TLS was on;
                   never the credentials), "auth_result", "mail", "rcpt"
                   (with the reply sent), "data" (with the reply sent), "quit".

Behaviour switches:
  --starttls --cert C --key K   offer STARTTLS and require it before MAIL.
  --implicit-tls --cert C --key K
                                TLS from the first byte (port-465 style).
  --self-signed-dir DIR         make a throwaway self-signed certificate for
                                localhost/127.0.0.1 with openssl in DIR and
                                use it (instead of --cert/--key).
  --no-starttls-offer           never offer STARTTLS (the default without
                                --starttls; kept explicit for readability).
  --auth USER:PASS              offer AUTH PLAIN/LOGIN and require it before
                                MAIL. AUTH is only offered over TLS unless
                                --allow-plaintext-auth is given.
  --reject-rcpt PATTERN=CODE    refuse RCPT TO whose address contains PATTERN
                                with CODE (e.g. bad@=550, busy@=451);
                                repeatable; the first matching rule wins.
  --fail-data CODE:COUNT        answer the end of DATA with CODE for the first
                                COUNT messages, then accept.
  --stall-before-250 SECONDS    wait before accepting each message.
  --rate-limit N                answer the end of DATA with "454 4.7.0 rate limit
                                exceeded" while N messages were already
                                accepted within the last second (a throttling
                                relay); the "data" event then has
                                "throttled": true. Accepted messages' .json
                                carry "accepted_at" (Unix seconds).
  --idle-timeout SECONDS        close connections idle this long (default 300).
  --minimal                     least work per message, for load tests: no
                                events.jsonl and no .json envelopes; each
                                accepted message is written once as
                                DIR/<seq>.eml (not via a temporary file).
"""

import argparse
import asyncio
import json
import os
import secrets
import signal
import ssl
import subprocess
import sys
import threading
import time
from collections import deque

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, syntax

RCPT_REPLIES = {
    450: "450 4.2.0 mailbox unavailable, try again later",
    451: "451 4.3.0 mailbox busy, try again later",
    452: "452 4.2.2 insufficient storage, try again later",
    550: "550 5.1.1 no such user",
    551: "551 5.1.6 user not local",
    552: "552 5.2.2 mailbox full",
    553: "553 5.1.3 mailbox name not allowed",
    554: "554 5.7.1 recipient rejected",
}

DATA_REPLIES = {
    421: "421 4.3.2 service shutting down, try again later",
    451: "451 4.3.0 temporary failure, try again later",
    452: "452 4.3.1 insufficient system storage, try again later",
    552: "552 5.3.4 message size exceeds fixed limit",
    554: "554 5.6.0 message rejected: content refused",
}


def reply_for(code, table):
    if code in table:
        return table[code]
    if 400 <= code < 500:
        return f"{code} 4.0.0 temporary failure"
    return f"{code} 5.0.0 rejected"


class State:
    """Everything the server remembers; touched only from the event loop."""

    def __init__(self, args):
        self.maildir = args.maildir
        self.reject_rules = []
        for rule in args.reject_rcpt:
            pattern, sep, code = rule.rpartition("=")
            if not sep or not pattern or not code.isdigit():
                raise SystemExit(f"--reject-rcpt wants PATTERN=CODE, got {rule!r}")
            self.reject_rules.append((pattern, int(code)))
        self.fail_data_code = 0
        self.fail_data_left = 0
        if args.fail_data:
            code, sep, count = args.fail_data.partition(":")
            if not sep or not code.isdigit() or not count.isdigit():
                raise SystemExit(f"--fail-data wants CODE:COUNT, got {args.fail_data!r}")
            self.fail_data_code = int(code)
            self.fail_data_left = int(count)
        self.stall_seconds = args.stall_before_250
        self.rate_limit = args.rate_limit
        self.minimal = args.minimal
        self.recent_accepts = deque()
        self.user = None
        self.password = None
        if args.auth:
            user, sep, password = args.auth.partition(":")
            if not sep:
                raise SystemExit("--auth wants USER:PASS")
            self.user = user.encode()
            self.password = password.encode()
        self.connections = 0
        self.accepted = 0
        self.lock = threading.Lock()

    def event(self, kind, **fields):
        if not self.maildir or self.minimal:
            return
        record = {"event": kind}
        record.update(fields)
        with self.lock, open(os.path.join(self.maildir, "events.jsonl"), "a") as f:
            f.write(json.dumps(record) + "\n")

    def save(self, seq, content, envelope_record):
        if not self.maildir:
            return
        base = os.path.join(self.maildir, str(seq))
        if self.minimal:
            with open(base + ".eml", "wb") as f:
                f.write(content)
            return
        # The envelope first: a reader that sees <seq>.eml finds its <seq>.json.
        for suffix, data in ((".json", json.dumps(envelope_record, indent=1).encode()),
                             (".eml", content)):
            tmp = base + suffix + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, base + suffix)


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP, numbering connections and recording AUTH attempts."""

    def __init__(self, handler, state, **kwargs):
        super().__init__(handler, **kwargs)
        self.postline_state = state
        # Assigned on the first HELO/EHLO, so that the controller's start-up
        # probe (which connects and says nothing) is not counted.
        self.connection_id = 0

    def uses_tls(self):
        if self._tls_protocol is not None:
            return True
        return self.transport is not None and \
            self.transport.get_extra_info("ssl_object") is not None

    def note_connection(self):
        if self.connection_id == 0:
            self.postline_state.connections += 1
            self.connection_id = self.postline_state.connections
            peer = self.session.peer
            self.postline_state.event("connection", connection=self.connection_id,
                                      peer=list(peer) if peer else None,
                                      tls=self.uses_tls())

    @syntax("AUTH <mechanism>")
    async def smtp_AUTH(self, arg):
        self.postline_state.event(
            "auth", connection=self.connection_id, tls=self.uses_tls(),
            mechanism=(arg or "").split(" ")[0].upper())
        await super().smtp_AUTH(arg)

    @syntax("QUIT")
    async def smtp_QUIT(self, arg):
        self.postline_state.event("quit", connection=self.connection_id)
        await super().smtp_QUIT(arg)


class Handler:
    """aiosmtpd hooks: per-recipient rules, DATA failures, saving messages."""

    def __init__(self, state):
        self.state = state

    async def handle_HELO(self, server, session, envelope, hostname):
        server.note_connection()
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        server.note_connection()
        session.host_name = hostname
        self.state.event("ehlo", connection=server.connection_id, tls=server.uses_tls(),
                         hostname=hostname)
        return responses

    def handle_STARTTLS(self, server, session, envelope):
        self.state.event("starttls", connection=server.connection_id)
        return True

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        self.state.event("mail", connection=server.connection_id, address=address)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = "250 2.1.5 OK"
        for pattern, code in self.state.reject_rules:
            if pattern in address:
                reply = reply_for(code, RCPT_REPLIES)
                break
        else:
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
        self.state.event("rcpt", connection=server.connection_id, address=address,
                         reply=reply)
        return reply

    async def handle_DATA(self, server, session, envelope):
        state = self.state
        if state.fail_data_left > 0:
            state.fail_data_left -= 1
            reply = reply_for(state.fail_data_code, DATA_REPLIES)
            state.event("data", connection=server.connection_id, reply=reply)
            return reply
        if state.stall_seconds:
            await asyncio.sleep(state.stall_seconds)
        if state.rate_limit:
            now = time.monotonic()
            while state.recent_accepts and now - state.recent_accepts[0] >= 1.0:
                state.recent_accepts.popleft()
            if len(state.recent_accepts) >= state.rate_limit:
                reply = "454 4.7.0 rate limit exceeded, slow down"
                state.event("data", connection=server.connection_id, reply=reply, throttled=True)
                return reply
            state.recent_accepts.append(now)
        state.accepted += 1
        seq = state.accepted
        queue_id = secrets.token_hex(5).upper()
        peer = session.peer
        auth_user = None
        if isinstance(session.auth_data, LoginPassword):
            auth_user = session.auth_data.login.decode("utf-8", "replace")
        state.save(seq, envelope.original_content, {
            "seq": seq,
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "peer": list(peer) if peer else None,
            "connection": server.connection_id,
            "tls": server.uses_tls(),
            "auth_user": auth_user,
            "queue_id": queue_id,
            "accepted_at": time.time(),
        })
        reply = f"250 2.0.0 Ok: queued as {queue_id}"
        state.event("data", connection=server.connection_id, reply=reply, seq=seq)
        return reply


class TestController(Controller):
    """Controller that works with port 0 and builds RecordingSMTP servers."""

    def __init__(self, handler, state, **kwargs):
        self.postline_state = state
        super().__init__(handler, **kwargs)

    def factory(self):
        return RecordingSMTP(self.handler, self.postline_state, **self.SMTP_kwargs)

    def _trigger_server(self):
        # With port 0 the kernel picked the port: probe that one.
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def make_self_signed(directory):
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-days", "1",
         "-keyout", key, "-out", cert],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--maildir")
    p.add_argument("--starttls", action="store_true")
    p.add_argument("--implicit-tls", action="store_true")
    p.add_argument("--no-starttls-offer", action="store_true")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--self-signed-dir")
    p.add_argument("--auth")
    p.add_argument("--allow-plaintext-auth", action="store_true")
    p.add_argument("--reject-rcpt", action="append", default=[])
    p.add_argument("--fail-data")
    p.add_argument("--stall-before-250", type=float, default=0.0)
    p.add_argument("--idle-timeout", type=float, default=300.0)
    p.add_argument("--rate-limit", type=int, default=0)
    p.add_argument("--minimal", action="store_true")
    args = p.parse_args(argv)
    if args.starttls and args.no_starttls_offer:
        p.error("--starttls and --no-starttls-offer exclude each other")
    if args.starttls and args.implicit_tls:
        p.error("--starttls and --implicit-tls exclude each other")
    return args


def main(argv):
    args = parse_args(argv)
    if args.maildir:
        os.makedirs(args.maildir, exist_ok=True)
    state = State(args)

    cert, key = args.cert, args.key
    if args.self_signed_dir:
        cert, key = make_self_signed(args.self_signed_dir)
    tls_context = None
    if args.starttls or args.implicit_tls:
        if not cert or not key:
            raise SystemExit("TLS needs --cert and --key, or --self-signed-dir")
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(cert, key)

    smtp_kwargs = {
        "server_hostname": "smtp.test",
        "timeout": args.idle_timeout,
        "ready_timeout": 20.0,
    }
    if args.starttls:
        smtp_kwargs["tls_context"] = tls_context
        smtp_kwargs["require_starttls"] = True
    if args.implicit_tls:
        smtp_kwargs["ssl_context"] = tls_context
    if state.user is not None:
        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (isinstance(auth_data, LoginPassword)
                  and auth_data.login == state.user and auth_data.password == state.password)
            state.event("auth_result", connection=server.connection_id, mechanism=mechanism,
                        success=ok)
            # handled=False: let aiosmtpd send its 535 reply on failure.
            return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)
        smtp_kwargs["authenticator"] = authenticator
        smtp_kwargs["auth_required"] = True
        # aiosmtpd only counts STARTTLS as TLS; with --implicit-tls every
        # connection is TLS from the first byte, so AUTH may be offered.
        smtp_kwargs["auth_require_tls"] = not (args.allow_plaintext_auth or args.implicit_tls)

    controller = TestController(Handler(state), state, hostname=args.host, port=args.port,
                                **smtp_kwargs)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    controller.start()

    announce = {"port": controller.server.sockets[0].getsockname()[1]}
    if args.self_signed_dir:
        announce["cert"] = cert
        announce["key"] = key
    sys.stdout.write(json.dumps(announce) + "\n")
    sys.stdout.flush()

    while not stop.wait(1.0):
        pass
    controller.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
