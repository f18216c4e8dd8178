"""Prints the signing vectors of crates/mfa-core/src/backend/duo/sign.rs, computed by
duo_client's own canonicalize() and sign(): run with the venv of scripts/duo.sh,
  .deps/duo-venv/bin/python tests/duo/vectors.py
and the unit tests hold its output."""
import json
from duo_client import client

IKEY = "DIWJ8X6AEYOR5OMC6TQ1"
SKEY = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"
HOST = "API-First.duosecurity.com"
DATE = "Tue, 21 Aug 2012 17:29:18 -0000"

def post(path, params):
    body = client.Client.canon_json(params)
    return body, client.sign(IKEY, SKEY, "POST", HOST, path, DATE, 5, {}, body=body)

def get(path, params):
    norm = client.normalize_params(params)
    return client.sign(IKEY, SKEY, "GET", HOST, path, DATE, 5, norm, body="")

body, auth = post("/auth/v2/auth", {"username": "alice", "factor": "push", "device": "auto", "async": "1",
                                    "pushinfo": "nas=vpn gw&é", "ipaddr": "192.0.2.7"})
print("v5 POST body:", body)
print("v5 POST canonical:", json.dumps(client.canonicalize("POST", HOST, "/auth/v2/auth", {}, DATE, 5, body=body)))
print("v5 POST:", auth)
print("v5 GET:", get("/auth/v2/auth_status", {"txid": "a b/c~d+é"}))
print("v5 GET empty:", get("/auth/v2/check", {}))
v2 = client.normalize_params({"username": "alice", "factor": "passcode", "passcode": "123 456/é"})
print("v2 canonical:", json.dumps(client.canonicalize("POST", HOST, "/auth/v2/auth", v2, DATE, 2)))
print("v2 POST:", client.sign(IKEY, SKEY, "POST", HOST, "/auth/v2/auth", DATE, 2, v2))
