# SPDX-License-Identifier: GPL-2.0-or-later
"""A small JSON client for privacyIDEA's REST API (standard library only), and the
state file pi_server.py writes for pi_admin.py: the URL and the admin's JWT."""
import json
import os
import urllib.error
import urllib.parse
import urllib.request

STATE_FILE = "state.json"


def call(url, method="GET", data=None, token=None, form=False, timeout=30):
    """Returns (HTTP status, parsed JSON body). Errors with a JSON body are returned too."""
    headers = {"Accept": "application/json", "User-Agent": "rlm-mfa-test/1"}
    body = None
    if data is not None and method == "GET":
        url += "?" + urllib.parse.urlencode(data)
    elif data is not None and form:
        body = urllib.parse.urlencode(data).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif data is not None:
        body = json.dumps(data).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = token
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, {"raw": text.decode("utf-8", "replace")}


class AdminError(Exception):
    pass


class Admin:
    """The admin side of one server: calls that must succeed."""

    def __init__(self, url, token):
        self.url = url.rstrip("/")
        self.token = token

    @classmethod
    def login(cls, url, username, password):
        status, body = call(url.rstrip("/") + "/auth", "POST", {"username": username, "password": password})
        if status != 200 or not body["result"]["status"]:
            raise AdminError(f"admin login failed: HTTP {status} {body}")
        return cls(url, body["result"]["value"]["token"])

    @classmethod
    def from_state(cls, directory):
        state = read_state(directory)
        return cls(state["url"], state["admin_token"])

    def __call__(self, method, path, data=None):
        status, body = call(self.url + path, method, data, token=self.token)
        if status != 200 or not isinstance(body, dict) or not body.get("result", {}).get("status"):
            raise AdminError(f"{method} {path} failed: HTTP {status} {json.dumps(body)}")
        return body


def read_state(directory):
    with open(os.path.join(directory, STATE_FILE)) as f:
        return json.load(f)


def write_state(directory, state):
    tmp = os.path.join(directory, STATE_FILE + ".tmp")
    with open(tmp, "w") as f:
        json.dump(state, f, indent=1)
    os.chmod(tmp, 0o600)
    os.rename(tmp, os.path.join(directory, STATE_FILE))
