# SPDX-License-Identifier: GPL-2.0-or-later
"""The tests' administrator of a privacyIDEA started by pi_server.py: one subcommand per
action, each printing one JSON object on stdout (exit status 1 and {"error": ...} on
failure). Run with the venv's python:

    pi_admin.py --dir DIR enroll-hotp USER REALM KEY_HEX [--pin P]
    pi_admin.py --dir DIR enroll-totp USER REALM KEY_HEX [--pin P]   (SHA1, 6 digits, 30 s)
    pi_admin.py --dir DIR enroll-email USER REALM [--pin P]          (to the user's e-mail)
    pi_admin.py --dir DIR enroll-sms USER REALM [--pin P]            (to the user's mobile)
    pi_admin.py --dir DIR enroll-push USER REALM [--pin P]           (rollout done by the phone)
    pi_admin.py --dir DIR read-sent-code USER [--realm R] [--since N] [--wait S]
    pi_admin.py --dir DIR phone-answer SERIAL accept|decline [--wait S] [--decline-reason R]
    pi_admin.py --dir DIR set-policy NAME SCOPE ACTION [realm=R] [user=U] [priority=N] ...
    pi_admin.py --dir DIR delete-policy NAME
    pi_admin.py --dir DIR set-config KEY VALUE          (e.g. DefaultChallengeValidityTime 5)
    pi_admin.py --dir DIR disable-token SERIAL | enable-token SERIAL | delete-token SERIAL
    pi_admin.py --dir DIR tokens USER [--realm R]

Token PINs default to none ("" triggers a challenge token with an empty PIN).
"""
import argparse
import json
import os
import re
import sys
import time

# No __pycache__ in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import phone  # noqa: E402
import pi_rest  # noqa: E402


def user_info(admin, user, realm):
    found = admin("GET", "/user/", {"username": user, "realm": realm} if realm else {"username": user})
    users = found["result"]["value"]
    if not users:
        raise pi_rest.AdminError(f"no user {user} in realm {realm}")
    return users[0]


def init_token(admin, params, user, realm, pin):
    params = dict(params, user=user, realm=realm)
    if pin is not None:
        params["pin"] = pin
    body = admin("POST", "/token/init", params)
    detail = body["detail"]
    return body, {"serial": detail["serial"], "type": params["type"], "user": user, "realm": realm}


def enroll_otp(admin, a, kind):
    params = {"type": kind, "otpkey": a.key_hex, "genkey": 0, "hashlib": "sha1", "otplen": 6}
    if kind == "totp":
        params["timeStep"] = 30
    return init_token(admin, params, a.user, a.realm, a.pin)[1]


def enroll_email(admin, a):
    address = user_info(admin, a.user, a.realm)["email"]
    out = init_token(admin, {"type": "email", "email": address}, a.user, a.realm, a.pin)[1]
    return dict(out, email=address)


def enroll_sms(admin, a):
    number = user_info(admin, a.user, a.realm)["mobile"]
    out = init_token(admin, {"type": "sms", "phone": number}, a.user, a.realm, a.pin)[1]
    return dict(out, phone=number)


def enroll_push(admin, a):
    body, out = init_token(admin, {"type": "push", "genkey": 1}, a.user, a.realm, a.pin)
    registered = phone.register(a.dir, admin.url, out["serial"], body["detail"]["enrollment_credential"])
    return dict(out, rollout_state=registered["detail"].get("rollout_state"))


def outbox(directory):
    with open(pi_rest.read_state(directory)["outbox"]) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_sent_code(admin, a):
    """The newest message (after the first --since ones) to any address of the user."""
    info = user_info(admin, a.user, a.realm)
    addresses = {v for v in (info.get("email"), info.get("mobile"), info.get("phone")) if v}
    deadline = time.monotonic() + a.wait
    while True:
        messages = outbox(a.dir)
        mine = [(i, m) for i, m in enumerate(messages) if i >= a.since and addresses & set(m["to"])]
        if mine or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    if not mine:
        raise pi_rest.AdminError(f"no message to {sorted(addresses)} after message {a.since}")
    index, message = mine[-1]
    code = re.search(r"\b\d{6,10}\b", message["body"])
    return {"code": code.group(0) if code else None, "channel": message["channel"], "to": message["to"],
            "subject": message.get("subject"), "body": message["body"], "index": index, "count": len(messages)}


def set_policy(admin, a):
    data = {"scope": a.scope, "action": a.action, "active": True}
    for extra in a.extra:
        key, _, value = extra.partition("=")
        data[key] = value
    admin("POST", f"/policy/{a.name}", data)
    return {"policy": a.name, **data}


def main():
    parser = argparse.ArgumentParser(description="privacyIDEA administration for the tests")
    parser.add_argument("--dir", required=True, help="the directory pi_server.py runs in")
    sub = parser.add_subparsers(dest="command", required=True)
    for kind in ("hotp", "totp"):
        p = sub.add_parser(f"enroll-{kind}")
        p.add_argument("user"), p.add_argument("realm"), p.add_argument("key_hex"), p.add_argument("--pin")
    for kind in ("email", "sms", "push"):
        p = sub.add_parser(f"enroll-{kind}")
        p.add_argument("user"), p.add_argument("realm"), p.add_argument("--pin")
    p = sub.add_parser("read-sent-code")
    p.add_argument("user"), p.add_argument("--realm", default="corp")
    p.add_argument("--since", type=int, default=0, help="skip the first N outbox messages")
    p.add_argument("--wait", type=float, default=5.0, help="seconds to wait for a message")
    p = sub.add_parser("phone-answer")
    p.add_argument("serial"), p.add_argument("answer", choices=["accept", "decline"])
    p.add_argument("--wait", type=float, default=10.0, help="seconds to wait for a challenge")
    p.add_argument("--decline-reason"), p.add_argument("--presence-answer")
    p = sub.add_parser("phone-poll")
    p.add_argument("serial")
    p = sub.add_parser("set-policy")
    p.add_argument("name"), p.add_argument("scope"), p.add_argument("action")
    p.add_argument("extra", nargs="*", help="key=value: realm, user, resolver, client, priority...")
    p = sub.add_parser("delete-policy")
    p.add_argument("name")
    p = sub.add_parser("set-config")
    p.add_argument("key"), p.add_argument("value")
    for verb in ("disable-token", "enable-token", "delete-token"):
        sub.add_parser(verb).add_argument("serial")
    p = sub.add_parser("tokens")
    p.add_argument("user"), p.add_argument("--realm", default="corp")
    a = parser.parse_args()

    admin = pi_rest.Admin.from_state(a.dir)
    c = a.command
    if c in ("enroll-hotp", "enroll-totp"):
        out = enroll_otp(admin, a, c.split("-")[1])
    elif c == "enroll-email":
        out = enroll_email(admin, a)
    elif c == "enroll-sms":
        out = enroll_sms(admin, a)
    elif c == "enroll-push":
        out = enroll_push(admin, a)
    elif c == "read-sent-code":
        out = read_sent_code(admin, a)
    elif c == "phone-answer":
        out = phone.answer(a.dir, admin.url, a.serial, a.answer == "accept", a.wait, a.decline_reason,
                           a.presence_answer)
        if not out["answered"]:
            print(json.dumps(out))
            sys.exit(1)
    elif c == "phone-poll":
        out = {"challenges": phone.poll(a.dir, admin.url, a.serial)}
    elif c == "set-policy":
        out = set_policy(admin, a)
    elif c == "delete-policy":
        admin("DELETE", f"/policy/{a.name}")
        out = {"deleted": a.name}
    elif c == "set-config":
        admin("POST", "/system/setConfig", {a.key: a.value})
        out = {a.key: a.value}
    elif c in ("disable-token", "enable-token"):
        admin("POST", f"/token/{c.split('-')[0]}/{a.serial}")
        out = {c.split("-")[0] + "d": a.serial}
    elif c == "delete-token":
        admin("DELETE", f"/token/{a.serial}")
        out = {"deleted": a.serial}
    elif c == "tokens":
        body = admin("GET", "/token/", {"user": a.user, "realm": a.realm})
        out = {"tokens": [{k: t.get(k) for k in ("serial", "tokentype", "active", "failcount", "rollout_state")}
                          for t in body["result"]["value"]["tokens"]]}
    print(json.dumps(out))


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # noqa: BLE001 - the caller reads the reason from the JSON
        print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        sys.exit(1)
