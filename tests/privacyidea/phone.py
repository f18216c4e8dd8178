# SPDX-License-Identifier: GPL-2.0-or-later
"""A simulated privacyIDEA Authenticator app for push tokens in "poll only" mode,
written from privacyIDEA 3.14's privacyidea/lib/tokens/pushtoken.py:

* enrollment step 2: POST /ttype/push serial, fbtoken, pubkey (the app's RSA public key,
  DER, base64 without PEM lines), enrollment_credential; the answer's detail.public_key
  is the server's RSA key for this token.
* poll: GET /ttype/push serial, timestamp (ISO 8601, within 1 minute of the server's
  clock), signature = app key over "{serial}|{timestamp}"; result.value lists the open
  challenges, each signed by the server over
  "{nonce}|{url}|{serial}|{question}|{title}|{sslverify}[|{require_presence}]".
* answer: POST /ttype/push serial, nonce, signature over "{nonce}|{serial}",
  plus "|decline" (and "|{decline_reason}") with decline=1, plus "|{presence_answer}".

Every signature is RSA PKCS#1 v1.5 with SHA-256, base32-encoded. The app's key stays in
DIR/phone/SERIAL.json (mode 0600), which only the tests read.
"""
import base64
import json
import os
import time
from datetime import datetime, timezone

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

import pi_rest


def _sign(key, text):
    return base64.b32encode(key.sign(text.encode("utf8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def _key_file(directory, serial):
    return os.path.join(directory, "phone", f"{serial}.json")


def _load(directory, serial):
    with open(_key_file(directory, serial)) as f:
        saved = json.load(f)
    key = serialization.load_pem_private_key(saved["private_key"].encode(), None)
    # The server sends its key as PKCS#1 (RSAPublicKey) without the PEM lines.
    server_key = serialization.load_pem_public_key(
        ("-----BEGIN RSA PUBLIC KEY-----\n" + saved["server_public_key"] + "\n-----END RSA PUBLIC KEY-----\n").encode())
    return key, server_key


def register(directory, url, serial, enrollment_credential):
    """Enrollment step 2; returns the server's answer."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    status, body = pi_rest.call(url + "/ttype/push", "POST", {
        "serial": serial,
        "fbtoken": "no-firebase-poll-only",
        "pubkey": base64.urlsafe_b64encode(der).decode(),
        "enrollment_credential": enrollment_credential,
    }, form=True)
    if status != 200 or not body["result"]["status"]:
        raise pi_rest.AdminError(f"push enrollment step 2 failed: HTTP {status} {json.dumps(body)}")
    os.makedirs(os.path.join(directory, "phone"), exist_ok=True)
    path = _key_file(directory, serial)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({
            "private_key": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()).decode(),
            "server_public_key": body["detail"]["public_key"],
        }, f)
    return body


def poll(directory, url, serial):
    """The open challenges of this token, each with the server's signature checked."""
    key, server_key = _load(directory, serial)
    timestamp = datetime.now(timezone.utc).isoformat()
    status, body = pi_rest.call(url + "/ttype/push", "GET", {
        "serial": serial, "timestamp": timestamp, "signature": _sign(key, f"{serial}|{timestamp}")})
    if status != 200 or not body["result"]["status"]:
        raise pi_rest.AdminError(f"push poll failed: HTTP {status} {json.dumps(body)}")
    challenges = body["result"]["value"]
    for c in challenges:
        signed = "{nonce}|{url}|{serial}|{question}|{title}|{sslverify}".format(**c)
        if "require_presence" in c:
            signed += "|" + c["require_presence"]
        # Raises InvalidSignature: a real app would refuse a challenge the server did not sign.
        server_key.verify(base64.b32decode(c["signature"]), signed.encode("utf8"), padding.PKCS1v15(),
                          hashes.SHA256())
    return challenges


def answer(directory, url, serial, accept, wait_seconds=10.0, decline_reason=None, presence_answer=None):
    """Polls (up to wait_seconds for a challenge to appear) and answers the oldest challenge."""
    deadline = time.monotonic() + wait_seconds
    while True:
        challenges = poll(directory, url, serial)
        if challenges or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    if not challenges:
        return {"answered": False, "error": "no open challenge for this token"}
    challenge = challenges[0]
    key, _ = _load(directory, serial)
    signed = f"{challenge['nonce']}|{serial}"
    data = {"serial": serial, "nonce": challenge["nonce"]}
    if not accept:
        signed += "|decline"
        data["decline"] = "1"
        if decline_reason:
            signed += f"|{decline_reason}"
            data["decline_reason"] = decline_reason
    if presence_answer:
        signed += f"|{presence_answer}"
        data["presence_answer"] = presence_answer
    data["signature"] = _sign(key, signed)
    status, body = pi_rest.call(url + "/ttype/push", "POST", data, form=True)
    return {"answered": status == 200 and body["result"]["status"] and body["result"]["value"] is True,
            "accept": accept, "open_challenges": len(challenges), "question": challenge["question"],
            "title": challenge["title"], "http_status": status, "response": body}
