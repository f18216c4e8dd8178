#!/usr/bin/env python3
# Online guessing against a real FreeRADIUS with rlm_mfa (Python 3 standard
# library only). Started by scripts/guess.sh, which builds the module.
#
# Fires thousands of wrong codes, in parallel, at one user and at many users,
# through every flow that takes a code: otp (the code alone), password+otp
# (password and code in one packet) and password-then-otp (answers to the
# module's challenges). For each run it checks that nothing is accepted, that
# exactly lockout.max_failures guesses are checked before the user is locked
# (the module's log lines and its state journal say how many were checked),
# and that a locked user's right code is refused. Then it states the guess
# rate the lockout allows and the chance that a guessed code gets through.
#
# SPDX-License-Identifier: GPL-2.0-or-later

import argparse
import base64
import hashlib
import json
import math
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

SECRET = b"testing123"
STEP = 30
LOCKED = "Too many failed attempts"
WRONG = "Wrong or already used code"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class GuessError(Exception):
    pass


# ---------------------------------------------------------------- TOTP

# RFC 4226, as the benchmark computes it (bench/bench.py checks it against the RFC's vectors).
sys.path.insert(0, os.path.join(ROOT, "bench"))
from bench import hotp  # noqa: E402


def totp_now(key):
    return hotp(key, int(time.time()) // STEP)


def wrong_code(key, rng):
    """A 6-digit code that no step near now accepts (two steps either side, wider
    than any window the runs use), so that every guess is wrong for sure."""
    step = int(time.time()) // STEP
    taken = {hotp(key, s) for s in range(step - 3, step + 4)}
    while True:
        code = "%06d" % rng.randrange(10 ** 6)
        if code not in taken:
            return code


# ---------------------------------------------------------------- RADIUS

def hide(password, authenticator):
    """RFC 2865 section 5.2."""
    padded = password + b"\0" * (-len(password) % 16) if password else b"\0" * 16
    out, previous = b"", authenticator
    for i in range(0, len(padded), 16):
        pad = hashlib.md5(SECRET + previous).digest()
        block = bytes(a ^ b for a, b in zip(padded[i:i + 16], pad))
        out += block
        previous = block
    return out


class Reply:
    def __init__(self, code, attrs):
        self.code, self.attrs = code, attrs

    def messages(self):
        return [v.decode("utf-8", "replace") for t, v in self.attrs if t == 18]

    def state(self):
        return next((v for t, v in self.attrs if t == 24), None)

    @property
    def kind(self):
        return {2: "accept", 3: "reject", 11: "challenge"}.get(self.code, str(self.code))


class Client:
    """One UDP socket; one request at a time."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(timeout)
        self.id = random.randrange(256)

    def send(self, user, password, state=None):
        self.id = (self.id + 1) % 256
        auth = os.urandom(16)
        attrs = bytes([1, 2 + len(user)]) + user.encode()
        hidden = hide(password.encode(), auth)
        attrs += bytes([2, 2 + len(hidden)]) + hidden
        if state is not None:
            attrs += bytes([24, 2 + len(state)]) + state
        packet = struct.pack(">BBH", 1, self.id, 20 + len(attrs)) + auth + attrs
        self.sock.send(packet)
        while True:
            data = self.sock.recv(4096)
            if len(data) >= 20 and data[1] == self.id:
                break
        length = struct.unpack(">H", data[2:4])[0]
        data = data[:length]
        check = hashlib.md5(data[:4] + auth + data[20:] + SECRET).digest()
        if check != data[4:20]:
            raise GuessError("answer with a wrong Response Authenticator")
        attrs, rest = [], data[20:]
        while rest:
            attrs.append((rest[0], rest[2:rest[1]]))
            rest = rest[rest[1]:]
        return Reply(data[0], attrs)


# ---------------------------------------------------------------- the server

class Server:
    """FreeRADIUS with the module, configured as scripts/demo.sh does it: the
    tests' radiusd.conf, the shipped sites-available/mfa, pap and files."""

    def __init__(self, base, name, module_lines, users, first_factor):
        self.dir = os.path.join(base, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        for sub in ("mods-enabled", "sites-enabled", "mods-config/mfa", "mods-config/files",
                    "log", "run", "var", "db", "acct"):
            os.makedirs(os.path.join(self.dir, sub))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = open(os.path.join(ROOT, "tests/radiusd.conf.in")).read()
        conf = conf.replace("@DIR@", self.dir).replace("@MODULE_DIR@", os.path.join(ROOT, "target/module"))
        self.write("radiusd.conf", conf)
        site = open(os.path.join(ROOT, "freeradius-conf/sites-available/mfa")).read()
        site = site.replace("ipaddr = *", "ipaddr = 127.0.0.1").replace("port = 1812", "port = %d" % self.port)
        if not first_factor:
            # otp mode: the code alone, no first factor in Auth-Type mfa (README, Modes).
            site = re.sub(r"if \(!&State\) \{\s*pap[^}]*\}", "", site)
        self.write("sites-enabled/mfa", site)
        self.write("mods-enabled/pap", "pap {\n\tnormalise = yes\n}\n")
        self.write("mods-enabled/files",
                   "files {\n\tmoddir = ${modconfdir}/${.:instance}\n\tfilename = ${moddir}/authorize\n}\n")
        self.write("mods-enabled/always", "always ok {\n\trcode = ok\n}\n")
        self.write("mods-enabled/mfa", "mfa {\n%s\n}\n" % module_lines)
        self.write("mods-config/files/authorize",
                   "".join('"%s"\tCleartext-Password := "%s"\n' % (u.name, u.password) for u in users))
        tokens = {"users": {u.name: {"tokens": [{"serial": "T-" + u.name, "type": "totp",
                                                  "secret": base64.b32encode(u.seed).decode()}]}
                            for u in users}}
        self.write("mods-config/mfa/tokens.json", json.dumps(tokens), 0o640)
        self.log = os.path.join(self.dir, "log/server.log")
        # No -x: the module's info lines (one per checked code, one per lock) still
        # reach the log, and the server runs at full speed.
        self.proc = subprocess.Popen(["freeradius", "-f", "-l", self.log, "-d", self.dir],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise GuessError("freeradius exited during start-up:\n" + self.log_text()[-3000:])
            try:
                Client(self.port, 0.2).send("nobody", "000000")
                return
            except socket.timeout:
                continue
            except OSError:
                time.sleep(0.1)
        raise GuessError("freeradius did not start:\n" + self.log_text()[-3000:])

    def write(self, path, text, mode=0o644):
        full = os.path.join(self.dir, path)
        with open(full, "w") as f:
            f.write(text)
        os.chmod(full, mode)

    def log_text(self):
        try:
            return open(self.log, errors="replace").read()
        except FileNotFoundError:
            return ""

    def checked(self, user):
        """Codes the module checked and found wrong for `user` (one info line each)."""
        return self.log_text().count('rejected: "%s" sent a wrong code' % user)

    def journal_failures(self, user):
        """The failure count of the user's lock record in the state journal."""
        failures = 0
        path = os.path.join(self.dir, "db/mfa/state.jsonl")
        for line in open(path):
            record = json.loads(line)
            if record.get("u") == user and record.get("k") == "lock":
                failures = record["f"]
            elif record.get("u") == user and record.get("k") == "unlock":
                failures = 0
        return failures

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class User:
    def __init__(self, name):
        self.name = name
        self.password = "pw-" + name
        self.seed = hashlib.sha256(name.encode()).digest()[:20]


# ---------------------------------------------------------------- guessing

def guess_once(client, flow, user, rng, outcome):
    """One wrong guess through `flow`; records what the server answered."""
    code = wrong_code(user.seed, rng)
    if flow == "otp":
        reply = client.send(user.name, code)
    elif flow == "password+otp":
        reply = client.send(user.name, "%s,%s" % (user.password, code))
    else:
        # password-then-otp: a dialogue; each answer is one guess.
        first = client.send(user.name, user.password)
        if first.kind != "challenge":
            outcome.add(user, first)
            return
        reply = client.send(user.name, code, first.state())
        while reply.kind == "challenge":
            outcome.add(user, reply)
            reply = client.send(user.name, wrong_code(user.seed, rng), reply.state())
    outcome.add(user, reply)


class Outcome:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {}
        self.accepted = 0
        self.answers = 0

    def add(self, user, reply):
        text = " ".join(reply.messages())
        kind = "locked" if text.startswith(LOCKED) else "wrong" if WRONG in text or "Wrong code" in text else reply.kind
        with self.lock:
            self.answers += 1
            self.accepted += reply.kind == "accept"
            self.counts[kind] = self.counts.get(kind, 0) + 1


def attack(server, flow, users, per_user, parallel):
    """per_user wrong guesses at each user, shuffled, `parallel` in flight."""
    jobs = [u for u in users for _ in range(per_user)]
    random.shuffle(jobs)
    outcome = Outcome()
    local = threading.local()

    def run(job):
        if not hasattr(local, "client"):
            local.client = Client(server.port)
            local.rng = random.Random()
        guess_once(local.client, flow, job, local.rng, outcome)

    started = time.time()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(run, jobs))
    return outcome, time.time() - started


def mode_lines(flow, max_failures, duration, window):
    return ("mode = %s\ntotp_window = %d\nmax_rounds = 3\n"
            "lockout {\n max_failures = %d\n duration = %d\n}\n" % (flow, window, max_failures, duration))


def run_flow(base, flow, n_users, per_user, parallel, max_failures, duration, window):
    users = [User("u%d" % i) for i in range(n_users)]
    server = Server(base, "%s-%d" % (flow.replace("+", "-"), n_users),
                    mode_lines(flow, max_failures, duration, window), users, flow != "otp")
    try:
        # password-then-otp: a challenge opened before the attack, answered with the
        # right code once the user is locked.
        early = {}
        if flow == "password-then-otp":
            for u in users[:3]:
                early[u.name] = Client(server.port).send(u.name, u.password).state()
        outcome, seconds = attack(server, flow, users, per_user, parallel)
        time.sleep(0.3)
        problems = []
        if outcome.accepted:
            problems.append("%d guesses accepted" % outcome.accepted)
        checked = [server.checked(u.name) for u in users]
        journal = [server.journal_failures(u.name) for u in users]
        expect = max_failures or None
        if max_failures and any(c != max_failures for c in checked):
            problems.append("checked guesses per user %s, expected %d each" % (sorted(set(checked)), max_failures))
        if max_failures and any(j != max_failures for j in journal):
            problems.append("journal failure counts %s, expected %d" % (sorted(set(journal)), max_failures))
        # A locked user's right code is refused.
        refused = 0
        for u in users[:3]:
            code = totp_now(u.seed)
            c = Client(server.port)
            if flow == "otp":
                reply = c.send(u.name, code)
            elif flow == "password+otp":
                reply = c.send(u.name, "%s,%s" % (u.password, code))
            else:
                reply = c.send(u.name, code, early[u.name])
            text = " ".join(reply.messages())
            if not max_failures:
                # No lockout: the wrong guesses left the right code working.
                if reply.kind != "accept":
                    problems.append("without lockout the right code of %s was refused: %s" % (u.name, text))
            elif reply.kind == "accept":
                problems.append("the right code of locked user %s was accepted" % u.name)
            elif not text.startswith(LOCKED):
                problems.append("user %s not locked: %s" % (u.name, text))
            else:
                refused += 1
        return {
            "flow": flow, "users": n_users, "guesses": outcome.answers, "accepted": outcome.accepted,
            "counts": outcome.counts, "checked": sum(checked), "per_user_checked": sorted(set(checked)),
            "right_code_refused": refused, "right_code_tried": min(3, n_users), "seconds": seconds, "problems": problems, "expect": expect,
        }
    finally:
        server.stop()


def run_rate(base, seconds, parallel, max_failures, duration, window):
    """Guessing without pause at one user with a short lockout: how many codes get checked."""
    user = User("rate")
    server = Server(base, "rate", mode_lines("otp", max_failures, duration, window), [user], False)
    try:
        outcome = Outcome()
        stop = time.time() + seconds

        def worker():
            c, rng = Client(server.port), random.Random()
            while time.time() < stop:
                guess_once(c, "otp", user, rng, outcome)

        started = time.time()
        threads = [threading.Thread(target=worker) for _ in range(parallel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.time() - started
        time.sleep(0.3)
        checked = server.checked(user.name)
        bound = max_failures * (math.floor(elapsed / duration) + 1)
        problems = [] if checked <= bound and not outcome.accepted else [
            "%d checked in %.1f s, bound %d; %d accepted" % (checked, elapsed, bound, outcome.accepted)]
        return {"guesses": outcome.answers, "checked": checked, "seconds": elapsed, "bound": bound,
                "accepted": outcome.accepted, "problems": problems}
    finally:
        server.stop()


# ---------------------------------------------------------------- the statement

def chance(p, guesses):
    # 1 - (1 - p)^n, computed without losing precision for small p.
    return -math.expm1(guesses * math.log1p(-p))


def statement(max_failures, duration, window, look_ahead, digits=6):
    per_day = max_failures * math.ceil(86400 / duration)
    per_year = max_failures * math.ceil(365 * 86400 / duration)
    lines = [
        "Allowed guess rate per user: lockout.max_failures / lockout.duration = %d per %d s "
        "= %d a day, %d a year (at most)." % (max_failures, duration, per_day, per_year),
        "Chance that guessing gets in: P(n) = 1 - (1 - k / 10^%d)^n, n = guesses allowed, "
        "k = codes accepted per guess (summed over the user's tokens)." % digits,
    ]
    for name, k in (("TOTP, totp_window = %d: k = 2 x %d + 1 = %d" % (window, window, 2 * window + 1), 2 * window + 1),
                    ("HOTP, hotp_look_ahead = %d: k = %d + 1 = %d" % (look_ahead, look_ahead, look_ahead + 1), look_ahead + 1)):
        p = k / 10 ** digits
        lines.append("  %s: per guess %.1e; within a day %.3f%%, within a year %.1f%%"
                     % (name, p, 100 * chance(p, per_day), 100 * chance(p, per_year)))
    lines.append("In password+otp and password-then-otp a guess also needs the user's password "
                 "(a wrong one is refused by the first factor and counts nothing); the lockout is per user, "
                 "so guessing at U users multiplies the chance of getting into one of them by about U.")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--guesses", type=int, default=3000, help="wrong codes at the single user, per flow")
    ap.add_argument("--users", type=int, default=200, help="users in the many-user runs")
    ap.add_argument("--per-user", type=int, default=15, help="wrong codes per user in the many-user runs")
    ap.add_argument("--parallel", type=int, default=32, help="requests in flight")
    ap.add_argument("--max-failures", type=int, default=5)
    ap.add_argument("--duration", type=int, default=300)
    ap.add_argument("--window", type=int, default=1)
    ap.add_argument("--rate-seconds", type=int, default=10, help="length of the rate run (lockout of 3 s)")
    ap.add_argument("--base", default=os.path.join(ROOT, "target/guess"))
    args = ap.parse_args()
    os.makedirs(args.base, exist_ok=True)

    failed = False
    print("== online guessing: lockout { max_failures = %d  duration = %d }, totp_window = %d, %d in flight"
          % (args.max_failures, args.duration, args.window, args.parallel))
    runs = []
    for flow in ("otp", "password+otp", "password-then-otp"):
        runs.append(run_flow(args.base, flow, 1, args.guesses, args.parallel,
                             args.max_failures, args.duration, args.window))
        runs.append(run_flow(args.base, flow, args.users, args.per_user, args.parallel,
                             args.max_failures, args.duration, args.window))
    # No lockout: every guess reaches the verifier, and none is accepted.
    runs.append(run_flow(args.base, "otp", 1, args.guesses, args.parallel, 0, 1, args.window))
    for r in runs:
        lock = "lockout %s" % ("off" if r["expect"] is None else "on")
        print("%-18s %4d user(s) %-11s %6d guesses in %5.1f s: %d accepted, checked %d (per user %s), "
              "answers %s, right code %s %s"
              % (r["flow"], r["users"], lock, r["guesses"], r["seconds"], r["accepted"], r["checked"],
                 r["per_user_checked"], json.dumps(r["counts"], sort_keys=True),
                 ("accepted (no lockout)" if r["expect"] is None
                  else "refused to %d/%d locked users" % (r["right_code_refused"], r["right_code_tried"])),
                 "OK" if not r["problems"] else "FAILED: " + "; ".join(r["problems"])))
        failed |= bool(r["problems"])
    rate = run_rate(args.base, args.rate_seconds, args.parallel, args.max_failures, 3, args.window)
    print("rate, lockout of 3 s: %d guesses in %.1f s without pause, %d checked (bound: max_failures x "
          "(floor(t / duration) + 1) = %d), %d accepted %s"
          % (rate["guesses"], rate["seconds"], rate["checked"], rate["bound"], rate["accepted"],
             "OK" if not rate["problems"] else "FAILED: " + "; ".join(rate["problems"])))
    failed |= bool(rate["problems"])
    print()
    for line in statement(args.max_failures, args.duration, args.window, 10):
        print(line)
    print()
    print("== %s" % ("FAILED" if failed else "all guessing runs passed: nothing accepted, lockout exact"))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
