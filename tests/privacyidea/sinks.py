# SPDX-License-Identifier: GPL-2.0-or-later
"""Where privacyIDEA's e-mail and SMS go in the tests: a minimal SMTP server and an
HTTP "SMS gateway", both on loopback, that deliver nowhere and append every message
to an outbox file (JSON lines) that `pi_admin.py read-sent-code` reads.

Only the part of SMTP that Python's smtplib (privacyIDEA's client) speaks without
TLS or login is implemented: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT.
"""
import email
import email.policy
import json
import socketserver
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Outbox:
    """An append-only JSON-lines file, safe to write from several threads."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        open(path, "a").close()

    def add(self, record):
        record["time"] = time.time()
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _mail_record(rcpts, data):
    message = email.message_from_bytes(data, policy=email.policy.default)
    body = message.get_body(preferencelist=("plain", "html"))
    return {
        "channel": "email",
        "to": rcpts,
        "subject": str(message.get("Subject", "")),
        "body": body.get_content() if body is not None else "",
    }


class _SmtpHandler(socketserver.StreamRequestHandler):
    timeout = 30

    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        self.reply("220 rlm-mfa-test-sink ESMTP")
        rcpts = []
        while True:
            line = self.rfile.readline()
            if not line:
                return
            verb = line.decode("utf-8", "replace").strip().split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 rlm-mfa-test-sink")
            elif verb == "MAIL":
                rcpts = []
                self.reply("250 OK")
            elif verb == "RCPT":
                address = line.decode("utf-8", "replace").split(":", 1)[1].strip()
                rcpts.append(address.strip("<>").split(">")[0])
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 end with <CRLF>.<CRLF>")
                lines = []
                while True:
                    data = self.rfile.readline()
                    if not data or data in (b".\r\n", b".\n"):
                        break
                    # RFC 5321 4.5.2: a leading dot was doubled by the sender.
                    lines.append(data[1:] if data.startswith(b"..") else data)
                self.server.outbox.add(_mail_record(rcpts, b"".join(lines)))
                self.reply("250 OK queued")
            elif verb in ("RSET", "NOOP"):
                rcpts = [] if verb == "RSET" else rcpts
                self.reply("250 OK")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("502 not implemented")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class _SmsHandler(BaseHTTPRequestHandler):
    """Takes the HTTP SMS provider's POST (form or JSON) and answers 200 "OK"."""

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode("utf-8", "replace")
        if "json" in (self.headers.get("Content-Type") or ""):
            params = json.loads(raw or "{}")
        else:
            params = {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}
        self.server.outbox.add({"channel": "sms", "to": [str(params.get("phone", ""))],
                                "body": str(params.get("text", "")), "params": params})
        body = b"OK"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start(outbox_path):
    """Starts both sinks on free loopback ports; returns (smtp_port, sms_url)."""
    outbox = Outbox(outbox_path)
    smtp = _SmtpServer(("127.0.0.1", 0), _SmtpHandler)
    sms = ThreadingHTTPServer(("127.0.0.1", 0), _SmsHandler)
    sms.daemon_threads = True
    for server in (smtp, sms):
        server.outbox = outbox
        threading.Thread(target=server.serve_forever, daemon=True).start()
    return smtp.server_address[1], f"http://127.0.0.1:{sms.server_address[1]}/sms"
