"""A fake of Duo's Auth API v2 for tests/duo.rs. Every request's signature is
checked with duo_client's own canonicalize() and sign() (Duo's reference client,
installed by scripts/duo.sh): a request it does not verify is answered 401, as
Duo does. The users and how they behave come from --users (JSON):

  {"alice": {"preauth": "auth", "push": "approve", "passcodes": ["123456"]}, ...}

preauth: auth | allow | deny | enroll | 429 | html403 | html407 (the answer to
/preauth; html4xx: a relay's or proxy's own HTML page with that status);
push: approve | deny | fraud | timeout | never (a phone call, factor=phone,
goes the same way), answered after "waits" polls that say "waiting" (1 for
approve, 0 for the others unless given), counting the polls of every caller;
slow: seconds a passcode's /auth takes; devices: the user's devices as preauth
lists them (one phone unless given). A device= that is not the user's is
answered 400, as Duo does.
A passcode is good once; factor=sms adds 777777 to the user's. Users not listed get "enroll". The secret key is read
from --skey-file at every request, so that a test can change it under a running
module. Each verified request is appended to --dir/requests.jsonl. Prints
"READY <port>" once listening."""
import argparse
import base64
import email.utils
import hmac
import json
import os
import threading
import time
import urllib.parse
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from duo_client import client as duo

args = None
users = {}
used_passcodes = set()
transactions = {}
lock = threading.Lock()


def log_request(entry):
    with lock, open(os.path.join(args.dir, "requests.jsonl"), "a") as f:
        f.write(json.dumps(entry) + "\n")


def devices_of(user):
    return user.get("devices", [{"device": "DPFAKE", "capabilities": ["push", "sms", "phone"],
                                 "type": "phone", "display_name": "Phone (XXX-XXX-1234)"}])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def page(self, status):
        """Not Duo's answer: an HTML page, as a relay or a proxy in the way sends."""
        data = b"<html><head><title>Access denied</title></head><body>Blocked by policy</body></html>"
        self.send_response(status)
        if status == 407:
            self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def fail(self, status, code, message):
        self.answer(status, {"stat": "FAIL", "code": code, "message": message})

    def ok(self, response):
        self.answer(200, {"stat": "OK", "response": response})

    def do_GET(self):
        self.handle_call("GET")

    def do_POST(self):
        self.handle_call("POST")

    def verified_params(self, method):
        """The request's parameters when its signature verifies, else None (answered)."""
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8") if length else ""
        date = self.headers.get("Date") or ""
        auth = self.headers.get("Authorization") or ""
        try:
            ikey, _ = base64.b64decode(auth.split(" ", 1)[1]).decode().split(":", 1)
        except Exception:
            self.fail(401, 40101, "Missing request credentials")
            return None
        if ikey != args.ikey:
            self.fail(401, 40102, "Invalid integration key in request credentials")
            return None
        sent = email.utils.parsedate_to_datetime(date).timestamp() if date else 0
        if abs(time.time() - sent) > 300:
            self.fail(401, 40105, "Request has expired")
            return None
        with open(args.skey_file) as f:
            skey = f.read().strip()
        headers = {k: v for k, v in self.headers.items() if k.lower().startswith("x-duo-")}
        # Behind a TLS front the module signs the front's address: the test writes it to "host".
        host = args.host
        if os.path.exists(os.path.join(args.dir, "host")):
            with open(os.path.join(args.dir, "host")) as f:
                host = f.read().strip()
        if args.sig_version == 5:
            if method == "POST":
                params, signed_body = {}, body
                decoded = json.loads(body)
                # The body must be the canonical JSON duo_client itself would send.
                if duo.Client.canon_json(decoded) != body:
                    self.fail(400, 40002, "Invalid request parameters")
                    return None
            else:
                params = urllib.parse.parse_qs(url.query, keep_blank_values=True)
                decoded, signed_body = {k: v[0] for k, v in params.items()}, ""
            expected = duo.sign(args.ikey, skey, method, host, url.path, date, 5, params,
                                body=signed_body, additional_headers=headers)
        else:
            raw = body if method == "POST" else url.query
            params = urllib.parse.parse_qs(raw, keep_blank_values=True)
            decoded = {k: v[0] for k, v in params.items()}
            expected = duo.sign(args.ikey, skey, method, host, url.path, date, 2,
                                duo.normalize_params(decoded))
        if not hmac.compare_digest(expected, auth):
            self.fail(401, 40103, "Invalid signature in request credentials")
            return None
        log_request({"method": method, "path": url.path, "params": decoded})
        return url.path, decoded

    def handle_call(self, method):
        verified = self.verified_params(method)
        if verified is None:
            return
        path, params = verified
        user = users.get(params.get("username", ""), {})
        if path == "/auth/v2/check":
            self.ok({"time": int(time.time())})
        elif path == "/auth/v2/preauth":
            result = user.get("preauth", "enroll")
            if result == "429":
                self.fail(429, 42901, "Too Many Requests")
            elif result.startswith("html"):
                self.page(int(result[4:]))
            elif result == "enroll":
                self.ok({"result": "enroll", "status_msg": "Enroll an authentication device to proceed",
                         "enroll_portal_url": "https://api-fake.duosecurity.com/portal?code=x"})
            elif result == "deny":
                self.ok({"result": "deny", "status_msg": "Your account is disabled"})
            elif result == "allow":
                self.ok({"result": "allow", "status_msg": "Allowing unknown user"})
            else:
                self.ok({"result": "auth", "status_msg": "Account is active", "devices": devices_of(user)})
        elif path == "/auth/v2/auth" and params.get("device", "auto") != "auto" and \
                params["device"] not in [d["device"] for d in devices_of(user)]:
            self.fail(400, 40002, "Invalid request parameters (device)")
        elif path == "/auth/v2/auth" and params.get("factor") == "passcode":
            time.sleep(user.get("slow", 0))
            code = params.get("passcode", "")
            key = (params.get("username"), code)
            with lock:
                good = code in user.get("passcodes", []) and key not in used_passcodes
                used_passcodes.add(key)
            if good:
                self.ok({"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."})
            else:
                self.ok({"result": "deny", "status": "deny", "status_msg": "Incorrect passcode. Please try again."})
        elif path == "/auth/v2/auth" and params.get("factor") == "sms":
            with lock:
                user.setdefault("passcodes", []).append("777777")
            self.ok({"result": "deny", "status": "sent", "status_msg": "New SMS passcodes sent."})
        elif path == "/auth/v2/auth" and params.get("factor") in ("push", "phone"):
            if params.get("async") != "1":
                self.fail(400, 40002, "the fake answers async pushes only")
                return
            txid = str(uuid.uuid4())
            with lock:
                how = user.get("push", "never")
                waits = user.get("waits", 1 if how == "approve" else 0)
                transactions[txid] = {"push": how, "polls": 0, "waits": waits}
            self.ok({"txid": txid})
        elif path == "/auth/v2/auth_status":
            with lock:
                tx = transactions.get(params.get("txid", ""))
                if tx:
                    tx["polls"] += 1
            if not tx:
                self.fail(400, 40002, "Invalid request parameters (txid)")
                return
            waiting = {"result": "waiting", "status": "pushed", "status_msg": "Pushed a login request to your device..."}
            how = tx["push"]
            if tx["polls"] <= tx["waits"] or how == "never":
                self.ok(waiting)
            elif how == "approve":
                self.ok({"result": "allow", "status": "allow", "status_msg": "Success. Logging you in..."})
            elif how == "deny":
                self.ok({"result": "deny", "status": "deny", "status_msg": "Login request denied."})
            elif how == "fraud":
                self.ok({"result": "deny", "status": "fraud", "status_msg": "Login request reported as fraudulent."})
            elif how == "timeout":
                self.ok({"result": "deny", "status": "timeout", "status_msg": "Login timed out."})
        else:
            self.fail(404, 40401, "Resource not found")


def main():
    global args, users
    p = argparse.ArgumentParser()
    p.add_argument("--dir", required=True)
    p.add_argument("--ikey", required=True)
    p.add_argument("--skey-file", required=True)
    p.add_argument("--users", default="{}")
    p.add_argument("--sig-version", type=int, default=5)
    args = p.parse_args()
    users = json.loads(args.users)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    port = server.server_address[1]
    # What the module signs: its api_host's host and port, in lower case.
    args.host = "127.0.0.1:%d" % port
    print("READY %d" % port, flush=True)
    threading.Thread(target=lambda: (os.read(0, 1), os._exit(0)), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
