# SPDX-License-Identifier: GPL-2.0-or-later
"""Runs a real privacyIDEA server for the tests, in one process that is easy to stop.

    .deps/privacyidea-venv/bin/python tests/privacyidea/pi_server.py --dir DIR [--port 0]
        [--template TEMPLATE_DIR] [--exit-on-stdin-eof]

In DIR: pi.cfg (SQLite, its own encryption key and audit keys made by pi-manage, the log
file), then the server on 127.0.0.1:PORT (0: a free port), threaded, so that a push poll
and a check run at once. Beside it, in this process: an SMTP sink and an HTTP SMS sink
(sinks.py) whose messages land in DIR/outbox.jsonl. Over the REST API with the admin's JWT
it sets up the users, realms, SMTP server, SMS gateway and push enrollment policy the tests
use (see USERS and configure()), writes DIR/state.json for pi_admin.py and prints one line

    READY {"url": ..., "port": ..., ...}

It serves until SIGTERM/SIGINT or, with --exit-on-stdin-eof, until its stdin closes (the
test process that started it is gone, even after a SIGKILL).

pi-manage's set-up (four processes that each load the whole application) takes seconds;
with --template, its result (keys, tables, admin) is copied from TEMPLATE_DIR, which the
first server fills. The per-server configuration is always done fresh over the API.
"""
import argparse
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import pi_rest  # noqa: E402
import sinks  # noqa: E402

ADMIN = "admin"
# Bumped when what the template holds changes.
TEMPLATE_FORMAT = "1"
TEMPLATE_FILES = ["enckey", "private.pem", "public.pem", "pi.sqlite", "secrets.json"]

# (login, uid, display name, mobile, phone, e-mail); every password is "pw-<login>".
USERS = [
    ("alice", 1001, "Alice Anders", "+4520000001", "+4530000001", "alice@example.com"),
    ("bob", 1002, "Bob Berg", "+4520000002", "+4530000002", "bob@example.com"),
    ("carol", 1003, "Carol Carlsen", "+4520000003", "+4530000003", "carol@example.com"),
    ("dave", 1004, "Dave Dahl", "+4520000004", "+4530000004", "dave@example.com"),
    ("erin", 1005, "Erin Eriksen", "+4520000005", "+4530000005", "erin@example.com"),
    # An e-mail-style login whose domain is no realm: privacyIDEA looks it up whole.
    ("frank@mail.example", 1006, "Frank Fisker", "+4520000006", "+4530000006", "frank@mail.example"),
]
# Realm "other" has a resolver of its own: another alice (another uid, no tokens) and oscar.
OTHER_USERS = [
    ("alice", 2001, "Alice Other", "+4520000101", "+4530000101", "alice@other.example"),
    ("oscar", 2002, "Oscar Olsen", "+4520000102", "+4530000102", "oscar@other.example"),
]


def password_of(login):
    return f"pw-{login}"


def write_config(d, port_hint, secrets_):
    p = lambda name: os.path.join(d, name)  # noqa: E731
    lines = {
        "SQLALCHEMY_DATABASE_URI": "sqlite:///" + p("pi.sqlite"),
        "SECRET_KEY": secrets_["secret_key"],
        "PI_PEPPER": secrets_["pepper"],
        "PI_ENCFILE": p("enckey"),
        "PI_AUDIT_KEY_PRIVATE": p("private.pem"),
        "PI_AUDIT_KEY_PUBLIC": p("public.pem"),
        "PI_LOGFILE": p("privacyidea.log"),
        "PI_NODE": f"test-{port_hint}",
        "PI_NODE_UUID": str(uuid.uuid4()),
        "PI_UUID_FILE": p("uuid.txt"),
        "PI_GNUPG_HOME": p("gpg"),
        "SUPERUSER_REALM": [],
    }
    with open(p("pi.cfg"), "w") as f:
        for key, value in lines.items():
            f.write(f"{key} = {value!r}\n")
        f.write("PI_LOGLEVEL = 20\n")  # INFO: privacyIDEA's DEBUG would log OTP values


def pi_manage(d, *args):
    exe = os.path.join(os.path.dirname(sys.executable), "pi-manage")
    env = dict(os.environ, PRIVACYIDEA_CONFIGFILE=os.path.join(d, "pi.cfg"))
    out = subprocess.run([exe, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if out.returncode != 0:
        raise SystemExit(f"pi-manage {args[0]} {args[1]} failed:\n{out.stdout}")


def template_stamp():
    from importlib.metadata import version
    return f"privacyIDEA {version('privacyIDEA')} format {TEMPLATE_FORMAT}"


def from_template(d, template):
    """Copies keys, tables and admin from a complete template; False when there is none."""
    if not template:
        return False
    try:
        with open(os.path.join(template, "stamp")) as f:
            if f.read() != template_stamp():
                return False
    except OSError:
        return False
    for name in TEMPLATE_FILES:
        shutil.copy2(os.path.join(template, name), os.path.join(d, name))
    return True


def publish_template(d, template):
    """Makes this server's fresh set-up the template (atomically: a rename)."""
    tmp = f"{template}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for name in TEMPLATE_FILES:
        shutil.copy2(os.path.join(d, name), os.path.join(tmp, name))
    with open(os.path.join(tmp, "stamp"), "w") as f:
        f.write(template_stamp())
    shutil.rmtree(template, ignore_errors=True)
    os.rename(tmp, template)


def build_files(d):
    """pi-manage's set-up in d; returns the secrets pi.cfg needs."""
    secrets_ = {"secret_key": secrets.token_hex(24), "pepper": secrets.token_hex(24),
                "admin_password": secrets.token_hex(12)}
    secrets_path = os.path.join(d, "secrets.json")
    with open(secrets_path, "w") as f:
        json.dump(secrets_, f)
    os.chmod(secrets_path, 0o600)
    write_config(d, "setup", secrets_)
    print("pi_server: pi-manage setup (encryption key, audit keys, tables, admin)", file=sys.stderr, flush=True)
    pi_manage(d, "setup", "create_enckey")
    pi_manage(d, "setup", "create_audit_keys")
    pi_manage(d, "setup", "create_tables")
    pi_manage(d, "admin", "add", ADMIN, "-p", secrets_["admin_password"])
    return secrets_


def set_up_files(d, template):
    """Keys, tables and admin in d: from the template, or built (and then made the template).
    A lock beside the template lets one of several servers started at once build it."""
    if template:
        os.makedirs(os.path.dirname(os.path.abspath(template)), exist_ok=True)
        with open(f"{template}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not from_template(d, template):
                build_files(d)
                publish_template(d, template)
    else:
        build_files(d)
    with open(os.path.join(d, "secrets.json")) as f:
        return json.load(f)


def write_passwd(path, users):
    from passlib.hash import sha512_crypt
    with open(path, "w") as f:
        for login, uid, name, mobile, phone, mail in users:
            crypted = sha512_crypt.using(rounds=5000).hash(password_of(login))
            # passwd resolver GECOS: name,room,office phone (mobile),home phone (phone),e-mail
            f.write(f"{login}:{crypted}:{uid}:{uid}:{name},,{mobile},{phone},{mail}:/home/{login}:/bin/sh\n")


def configure(admin, d, url, smtp_port, sms_url):
    """The server's configuration for the tests, made the way an administrator would."""
    write_passwd(os.path.join(d, "users-corp"), USERS)
    write_passwd(os.path.join(d, "users-other"), OTHER_USERS)
    admin("POST", "/resolver/corp-users", {"type": "passwdresolver", "fileName": os.path.join(d, "users-corp")})
    admin("POST", "/resolver/other-users", {"type": "passwdresolver", "fileName": os.path.join(d, "users-other")})
    admin("POST", "/realm/corp", {"resolvers": "corp-users"})
    admin("POST", "/realm/other", {"resolvers": "other-users"})
    admin("POST", "/defaultrealm/corp")
    # E-mail and SMS tokens deliver into the sinks.
    admin("POST", "/smtpserver/sink", {"server": "127.0.0.1", "port": smtp_port, "tls": False,
                                       "sender": "privacyidea@example.com", "timeout": 5})
    admin("POST", "/smsgateway", {"name": "sink", "module": "privacyidea.lib.smsprovider.HttpSMSProvider.HttpSMSProvider",
                                  "option.URL": sms_url, "option.HTTP_METHOD": "POST", "option.TIMEOUT": "5",
                                  "option.RETURN_SUCCESS": "OK",
                                  "option.phone": "{phone}", "option.text": "{otp}"})
    admin("POST", "/system/setConfig", {"email.identifier": "sink", "sms.identifier": "sink"})
    # Push without Firebase: the (simulated) app polls /ttype/push.
    admin("POST", "/policy/push-enrollment", {
        "scope": "enrollment",
        "action": {"push_firebase_configuration": "poll only",
                   "push_registration_url": url + "/ttype/push",
                   "push_ssl_verify": "0"},
    })


def serve(app, port):
    from werkzeug.serving import make_server
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--template")
    parser.add_argument("--exit-on-stdin-eof", action="store_true")
    args = parser.parse_args()
    d = os.path.abspath(args.dir)
    os.makedirs(d, exist_ok=True)

    secrets_ = set_up_files(d, args.template)
    write_config(d, args.port, secrets_)
    smtp_port, sms_url = sinks.start(os.path.join(d, "outbox.jsonl"))

    os.environ["PRIVACYIDEA_CONFIGFILE"] = os.path.join(d, "pi.cfg")
    from privacyidea.app import create_app
    app = create_app(config_name="production", silent=True)
    server = serve(app, args.port)
    port = server.server_port
    url = f"http://127.0.0.1:{port}"

    admin = pi_rest.Admin.login(url, ADMIN, secrets_["admin_password"])
    configure(admin, d, url, smtp_port, sms_url)
    state = {"url": url, "port": port, "dir": d, "admin_token": admin.token, "smtp_port": smtp_port,
             "sms_url": sms_url, "outbox": os.path.join(d, "outbox.jsonl"), "pid": os.getpid(),
             "users": {login: password_of(login) for login, *_ in USERS}}
    pi_rest.write_state(d, state)
    public = {k: v for k, v in state.items() if k != "admin_token"}
    print("READY " + json.dumps(public), flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_on_stdin_eof:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(1):
        pass
    server.shutdown()


if __name__ == "__main__":
    main()
