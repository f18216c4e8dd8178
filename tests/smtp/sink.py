"""An SMTP sink for the tests (tests/smtp.rs): a real SMTP server (aiosmtpd) on
127.0.0.1 that keeps each message it accepts as a file in a directory.

    sink.py DIR [--cert PEM --key PEM [--implicit-tls]] [--login USER:PASSWORD]

With --cert and --key it offers STARTTLS and requires it before MAIL (or, with
--implicit-tls, speaks TLS from the first byte). With --login it requires AUTH
(PLAIN or LOGIN) with that user and password before MAIL. It prints
"ready PORT" on its standard output once it accepts connections, and runs
until its standard input closes (the test process ends).

Each message goes to DIR/NNNN.eml: "X-Mail-From:" and "X-Rcpt-To:" lines with
the envelope, then the message as received.
"""

import argparse
import os
import socket
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Keeper:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            name = os.path.join(self.directory, "%04d.eml" % self.count)
        head = "X-Mail-From: %s\r\nX-Rcpt-To: %s\r\n" % (envelope.mail_from, ",".join(envelope.rcpt_tos))
        # Written under another name, then renamed: a reader never sees half a message.
        with open(name + ".part", "wb") as out:
            out.write(head.encode() + envelope.original_content)
        os.rename(name + ".part", name)
        return "250 Message accepted"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        # handled=False: aiosmtpd answers a failure itself (535).
        return AuthResult(success=ok, handled=False)

    return check


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("directory")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--login")
    args = parser.parse_args()
    os.makedirs(args.directory, exist_ok=True)

    options = {}
    if args.cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)
        if args.implicit_tls:
            options["ssl_context"] = context
        else:
            options["server_kwargs"] = {"tls_context": context, "require_starttls": True}
    if args.login:
        user, password = args.login.split(":", 1)
        smtp = options.setdefault("server_kwargs", {})
        smtp["authenticator"] = authenticator(user, password)
        smtp["auth_required"] = True
        # Without TLS the test still may log in (the module refuses that by itself).
        smtp["auth_require_tls"] = bool(args.cert)

    port = free_port()
    controller = Controller(Keeper(args.directory), hostname="127.0.0.1", port=port, **options)
    controller.start()
    print("ready %d" % port, flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
