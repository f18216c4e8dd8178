#!/usr/bin/env python3
# rlm_mfa soak run (Python 3 standard library only). Started by bench/soak.sh,
# which builds or finds the module.
#
# One FreeRADIUS (-f, no debug) with six rlm_mfa instances, one per flow:
#   mfa_otp    mode otp: TOTP users, HOTP users, and users who only ever send
#              wrong codes (rejected, then locked out: rejected all the same)
#   mfa_pw     mode password+otp ("password,code"), and users with a wrong password
#   mfa_chal   mode password-then-otp: password -> challenge -> code + State
#   mfa_menu   mode password-then-otp, app + SMS: password -> menu -> "2" ->
#              code sent to a fake SMS gateway -> that code + State
#   mfa_push   mode push: a fake provider that approves at once; logins past
#              max_waiting get a challenge and answer it
#   mfa_pi     backend = privacyidea: a fake privacyIDEA's /validate/check, which
#              accepts the right PIN and code (with the user's groups, mapped
#              onto Class by a reply rule) and rejects any other
# Cycles of logins through all flows at once (several radclient processes, -p
# parallelism), every reply checked against the code it must have; the
# server's VmRSS sampled every few seconds.
#
# SPDX-License-Identifier: GPL-2.0-or-later

import argparse
import hashlib
import http.server
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # no bench/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The benchmark's helpers: RFC 4226 codes, base32, files, the server process.
from bench import SECRET, STEP, Server, b32, hotp, self_test, tail, write_file  # noqa: E402

MENU_SMS_CHOICE = "2"  # the menu of an app + SMS user: 1. Authenticator app, 2. SMS
SMS_CODE = re.compile(r"Your login code is (\d+) ")
PI_PASS = "pin123456"  # what the fake privacyIDEA accepts (PIN and code in one field)
PI_CLASS = "0x" + b"soak".hex()  # Class from the group "vpn-soak", as radclient prints octets


# ---------------------------------------------------------------- fake peers

class FakePeer:
    """An HTTP server on 127.0.0.1 in a thread of this process, one request per connection."""

    def __init__(self, handle):
        peer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *_):
                pass

            def reply(self, code, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def serve(self):
                length = int(self.headers.get("Content-Length", "0") or 0)
                body = self.rfile.read(length) if length else b""
                code, answer = handle(self.command, self.path.split("?", 1)[0], body)
                with peer.lock:
                    peer.calls += 1
                    peer.bad += code >= 400
                self.reply(code, answer)

            do_GET = do_POST = do_DELETE = serve

        class Threading(http.server.ThreadingHTTPServer):
            request_queue_size = 1024  # a burst of logins connects at once
            daemon_threads = True

        self.lock = threading.Lock()
        self.calls = 0
        self.bad = 0
        self.httpd = Threading(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeSms:
    """The SMS gateway contract (crates/mfa-core/src/channel/gateway.rs,
    tests/common/fake_gateway.rs): POST the rendered JSON body, any 2xx is "sent".
    Keeps the last code sent to each user."""

    def __init__(self):
        self.codes = {}
        self.sent = 0
        self.peer = FakePeer(self.handle)
        self.url = self.peer.base + "/send"

    def handle(self, method, path, body):
        if method != "POST" or path != "/send":
            return 404, {"error": "not found"}
        try:
            doc = json.loads(body)
            code = SMS_CODE.match(doc["text"]).group(1)
            user = doc["user"]
        except (ValueError, KeyError, TypeError, AttributeError):
            return 400, {"error": "bad request"}
        with self.peer.lock:
            self.codes[user] = code
            self.sent += 1
        return 200, {"status": "queued"}


class FakePushApprover:
    """The generic push provider's contract (crates/mfa-core/src/channel/push/,
    tests/common/fake_push.rs): a new request_id creates a push (201, pending), a known one answers the existing push (200);
    status reads "approved" at once; DELETE cancels."""

    def __init__(self):
        self.by_request = {}
        self.pushes = {}  # id -> cancelled?
        self.created = self.polls = self.cancelled = 0
        self.peer = FakePeer(self.handle)
        self.url = self.peer.base

    def status(self, push_id):
        return "expired" if self.pushes[push_id] else "approved"

    def handle(self, method, path, body):
        lock = self.peer.lock
        if path.endswith("/push"):
            if method != "POST":
                return 405, {"error": "method"}
            try:
                doc = json.loads(body)
                if not all(isinstance(doc[f], str) for f in ("user", "message", "client", "request_id")):
                    raise ValueError
            except (ValueError, KeyError, TypeError):
                return 400, {"error": "bad request"}
            with lock:
                known = self.by_request.get(doc["request_id"])
                if known is not None:
                    return 200, {"id": known, "status": self.status(known)}
                self.created += 1
                push_id = f"push-{self.created}"
                self.by_request[doc["request_id"]] = push_id
                self.pushes[push_id] = False
            return 201, {"id": push_id, "status": "pending"}
        prefix, _, push_id = path.rpartition("/")
        with lock:
            if not prefix.endswith("/push") or push_id not in self.pushes:
                return 404, {"error": "not found"}
            if method == "GET":
                self.polls += 1
                return 200, {"id": push_id, "status": self.status(push_id)}
            if method == "DELETE":
                self.cancelled += not self.pushes[push_id]
                self.pushes[push_id] = True
                return 204, None
        return 405, {"error": "method"}


class FakePrivacyIdea:
    """privacyIDEA's /validate/check (crates/mfa-core/src/backend/privacyidea/,
    tests/privacyidea_fake.rs): a form body with user and pass; PI_PASS is accepted, with detail.user.groups (the
    add_user_in_response policy), any other pass rejected as a wrong PIN."""

    def __init__(self):
        self.accepted = self.rejected = 0
        self.peer = FakePeer(self.handle)
        self.url = self.peer.base

    def handle(self, method, path, body):
        if method != "POST" or path != "/validate/check":
            return 404, {"result": {"status": False, "error": {"code": 404, "message": "not found"}}}
        try:
            form = urllib.parse.parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
            user, password = form["user"][0], form["pass"][0]
        except (ValueError, KeyError, IndexError, UnicodeDecodeError):
            return 400, {"result": {"status": False, "error": {"code": 905, "message": "bad request"}}}
        if not user.startswith("pi"):
            return 400, {"result": {"status": False, "error": {"code": 904, "message": "not a soak user"}}}
        if password == PI_PASS:
            with self.peer.lock:
                self.accepted += 1
            return 200, {"result": {"status": True, "value": True, "authentication": "ACCEPT"},
                         "detail": {"serial": "SOAK1", "user": {"groups": ["vpn-soak", "staff"]}}}
        with self.peer.lock:
            self.rejected += 1
        return 200, {"result": {"status": True, "value": False, "authentication": "REJECT"},
                     "detail": {"message": "wrong otp pin"}}


# ---------------------------------------------------------------- configuration

# limits off: the soak sends each push and SMS user a login every cycle or two, far
# past a person's rate, and would meet limits.pushes and limits.codes_sent (5 per
# 900 s by default) after a few cycles; tests/ check the limits themselves.
def instance(name, mode, extra=""):
    return (f"mfa {name} {{\n\tmode = {mode}\n\ttokens = ${{modconfdir}}/mfa/{name}.json\n"
            f"\tstate = ${{db_dir}}/mfa/{name}.jsonl\n\tstate_key = ${{modconfdir}}/mfa/{name}.key\n"
            f"\trequire_token = no\n\ttotp_window = 1\n\tchallenge_timeout = {{challenge_timeout}}\n"
            f"\tcode_lifetime = {{code_lifetime}}\n"
            f"\tlockout {{\n\t\tmax_failures = 5\n\t\tduration = 300\n\t}}\n"
            f"\tlimits {{\n\t\tpushes = 0\n\t\tcodes_sent = 0\n\t}}\n{extra}}}\n")


MODULES = {
    "mfa_otp": instance("mfa_otp", "otp"),
    "mfa_pw": instance("mfa_pw", "password+otp"),
    "mfa_chal": instance("mfa_chal", "password-then-otp"),
    "mfa_menu": instance("mfa_menu", "password-then-otp",
                         "\tsms {\n\t\turl = \"{sms_url}\"\n"
                         "\t\tbody = '{{\"to\": \"{{destination}}\", \"text\": \"{{message}}\", \"user\": \"{{user}}\"}}'\n"
                         "\t\ttimeout = 5\n\t}\n"),
    "mfa_push": instance("mfa_push", "push",
                         "\tpush {\n\t\turl = \"{push_url}\"\n\t\tapproval = wait\n\t\tmax_waiting = 8\n"
                         "\t\twhen_busy = challenge\n\t\twait = 10\n\t\ttimeout = 3\n\t\tpoll_interval = 1\n\t}\n"),
    # privacyIDEA decides (mode, the token file and require_token are unused); its
    # answer's detail.user.groups "vpn-soak" becomes Class "soak". poll_wait below its
    # default of 15: poll_wait + 3 x timeout must stay under max_request_time (30 s).
    "mfa_pi": instance("mfa_pi", "otp",
                       "\tbackend = privacyidea\n\tprivacyidea {{\n\t\turl = \"{pi_url}\"\n\t\ttimeout = 5\n"
                       "\t\tpoll_wait = 10\n\t}}\n"
                       "\treply Class {{\n\t\tfrom = \"user.groups\"\n\t\tmatch = \"^vpn-(.*)$\"\n\t}}\n"),
    "files": "files {\n\tfilename = ${modconfdir}/files/authorize\n}\n",
    "pap": "pap {\n\tnormalise = yes\n}\n",
}

# Each instance claims its own users (require_token = no: the others pass). mfa_pi,
# whose backend claims every user, is called only for its own ("pi..."), after the
# others have passed them. The reply carries the User-Name as Filter-Id, so that a
# challenge can be matched to its user.
SITE = """\
server soak {{
listen {{
	type = auth
	ipaddr = 127.0.0.1
	port = {port}
}}
authorize {{
	update reply {{
		&Filter-Id := "%{{User-Name}}"
	}}
	mfa_otp
	mfa_pw
	mfa_chal
	mfa_menu
	mfa_push
	if (&User-Name =~ /^pi/) {{
		mfa_pi
	}}
	files
	pap
}}
authenticate {{
	Auth-Type mfa_otp {{
		mfa_otp
	}}
	Auth-Type mfa_pw {{
		pap
		mfa_pw
	}}
	Auth-Type mfa_chal {{
		if (!&State) {{
			pap
		}}
		mfa_chal
	}}
	Auth-Type mfa_menu {{
		if (!&State) {{
			pap
		}}
		mfa_menu
	}}
	Auth-Type mfa_push {{
		if (!&State) {{
			pap
		}}
		mfa_push
	}}
	Auth-Type mfa_pi {{
		mfa_pi
	}}
	Auth-Type PAP {{
		pap
	}}
}}
}}
"""


class Pool:
    """The users of one flow, used in turn. TOTP users are used at most once per step
    (replay protection); HOTP users move their counter on each login."""

    def __init__(self, prefix, size, seed, kind):
        self.names = [f"{prefix}{i:05d}" for i in range(size)]
        # A secret of its own per user, reproducible from the pool's seed.
        self.keys = {n: hashlib.sha256(f"{seed}:{n}".encode()).digest()[:20] for n in self.names}
        self.passwords = {n: f"pw-{n}" for n in self.names}
        self.kind = kind  # "totp", "hotp" or None
        self.counter = {n: 0 for n in self.names}
        self.last_step = {n: -1 for n in self.names}
        self.next = 0
        self.shared = 0  # codes equal to the code of a later step (see code())

    def take(self, count):
        count = min(count, len(self.names))
        picked = [self.names[(self.next + i) % len(self.names)] for i in range(count)]
        self.next = (self.next + count) % len(self.names)
        return picked

    def free_at(self, users, step):
        return all(self.last_step[u] < step for u in users)

    def code(self, user, step):
        key = self.keys[user]
        if self.kind == "hotp":
            c = self.counter[user]
            self.counter[user] += 1
            return hotp(key, c)
        code = hotp(key, step)
        # The module takes the latest step of its window (now +-1, now being this step or
        # the next) whose code is the one sent. Two steps share a code about once in a
        # million: then the later one is used up too, and its code, the same digits, is
        # refused as a replay.
        later = [s for s in (step + 1, step + 2) if hotp(key, s) == code]
        if later:
            self.shared += 1
        self.last_step[user] = max([step] + later)
        return code

    def wrong_code(self, user, step):
        # Right in no step the server may look at (its now may already be the next step).
        near = {hotp(self.keys[user], s) for s in range(step - 1, step + 3)}
        good = int(hotp(self.keys[user], step))
        return next(f"{(good + d) % 10 ** 6:06d}" for d in range(1, 10) if f"{(good + d) % 10 ** 6:06d}" not in near)

    def token(self, user):
        return {"serial": f"S-{user}", "type": self.kind or "totp", "secret": b32(self.keys[user])}


# ---------------------------------------------------------------- radclient

class Job:
    """One radclient run: packets for distinct users, each reply expected to be one of `expect`."""

    def __init__(self, name, lines, expect, verbose):
        self.name = name
        self.lines = lines  # [(user, attribute line)]
        self.expect = expect  # set of reply codes, e.g. {"Access-Accept"}
        self.verbose = verbose  # -x: each reply parsed (challenges need their State)
        self.replies = {}  # user -> (code, {attr: value}) when verbose
        self.counts = {}
        self.lost = 0
        self.unexpected = []


SUMMARY = {key: re.compile(rf"{key}\s*:\s*(\d+)") for key in ("Accepted", "Rejected", "Lost")}


def parse_verbose(text):
    replies = []
    current = None
    for line in text.splitlines():
        if line.startswith("Received "):
            current = [line.split()[1], {}]
            replies.append(current)
        elif current is not None and line[:1] in ("\t", " ") and " = " in line:
            name, value = line.strip().split(" = ", 1)
            current[1][name] = value.strip('"')
        else:
            current = None
    return replies


def udp_receive_drops():
    """The kernel's count of UDP datagrams dropped because a receive buffer was
    full (/proc/net/snmp, Udp RcvbufErrors), or None where it cannot be read."""
    try:
        with open("/proc/net/snmp") as f:
            names, values = [ln.split() for ln in f if ln.startswith("Udp:")][:2]
        return int(values[names.index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return None


def run_jobs(jobs, port, work, parallel, timeout):
    procs = []
    for job in jobs:
        if not job.lines:
            continue
        path = os.path.join(work, f"packets-{job.name}.txt")
        with open(path, "w") as f:
            f.write("".join(line + "\n\n" for _, line in job.lines))
        out = open(path + ".out", "w+")
        # Two tries, as a NAS re-sends: a datagram the kernel drops (the server's receive
        # buffer full in a burst; the report counts them) is sent again after `timeout`,
        # where with one try it was lost and, past challenge_timeout, spoilt the States
        # of its cycle. A request the server still works on is not run twice: FreeRADIUS
        # takes the second copy for a duplicate; a lost reply is re-sent from its cache.
        cmd = ["radclient", "-x" if job.verbose else "-q", "-s", "-p", str(parallel), "-r", "2",
               "-t", str(timeout), "-f", path, f"127.0.0.1:{port}", "auth", SECRET]
        # stderr apart: radclient's "Expected Access-Accept got Access-Challenge" lines would
        # land in the middle of buffered stdout lines.
        with open(path + ".err", "w") as err:
            procs.append((job, subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=err), out))
    for job, proc, out in procs:
        proc.wait()
        out.seek(0)
        text = out.read()
        out.close()
        for key, rx in SUMMARY.items():
            m = rx.search(text)
            job.counts[key] = int(m.group(1)) if m else None
        if job.verbose:
            by_user = {}
            for code, attrs in parse_verbose(text):
                by_user[attrs.get("Filter-Id", "?")] = (code, attrs)
            job.replies = by_user
            for user, _ in job.lines:
                if user not in by_user:
                    job.lost += 1
                elif by_user[user][0] not in job.expect:
                    job.unexpected.append((user, by_user[user][0], by_user[user][1].get("Reply-Message", "")))
        else:
            n = len(job.lines)
            if None in job.counts.values():
                job.lost = n
                job.unexpected.append(("*", "no summary", text[-300:]))
                continue
            good = job.counts["Accepted"] if job.expect == {"Access-Accept"} else job.counts["Rejected"]
            job.lost = job.counts["Lost"]
            other = n - good - job.lost
            if other:
                job.unexpected.append(("*", f"{other} of {n} not {'/'.join(job.expect)}", ""))
    return jobs


# ---------------------------------------------------------------- the run

class Sampler:
    """VmRSS of the server every `every` seconds, with the logins done so far."""

    def __init__(self, pid, every, progress):
        self.pid = pid
        self.every = every
        self.progress = progress
        self.samples = []  # (seconds, logins, VmRSS KiB)
        self.t0 = time.monotonic()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def rss(self):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def take(self):
        self.samples.append((time.monotonic() - self.t0, self.progress(), self.rss()))

    def loop(self):
        while not self.stopping.wait(self.every):
            try:
                self.take()
            except OSError:
                return

    def stop(self):
        self.stopping.set()
        self.thread.join()
        self.take()


class HeapProbe:
    """Bytes in use on the server's malloc heap, read while no login is in flight: gdb
    calls malloc_stats() in the server, whose report goes to a file (its stderr is
    pointed there first). VmRSS keeps the highest level the heap ever reached, since
    glibc rarely gives memory back; the bytes in use at rest show whether anything is
    still held, whatever the load was in between. gdb stops the server for a few
    seconds each time: only when idle."""

    def __init__(self, pid, work):
        self.pid = pid
        self.report = os.path.join(work, "malloc-stats.txt")
        self.readings = []  # (label, logins, in-use bytes, system bytes)
        open(self.report, "w").close()

    def gdb(self, *commands):
        cmd = ["gdb", "-p", str(self.pid), "-batch", "-nx"]
        for c in commands:
            cmd += ["-ex", c]
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120, check=False)

    kept = None  # no record of the run is kept

    def rests(self):
        return len(self.readings)

    def finish(self):
        pass  # each reading was taken at its rest

    def read(self, label, logins):
        """Returns the reading: (label, logins, in-use bytes, bytes from the system)."""
        size = os.path.getsize(self.report)
        if not self.readings:
            # O_WRONLY | O_CREAT | O_APPEND, mode 0644, made the server's stderr.
            self.gdb(f'call (int)dup2((int)open("{self.report}", 1089, 420), 2)')
        self.gdb("call (void)malloc_stats()")
        with open(self.report) as f:
            f.seek(size)
            text = f.read()
        total = text.split("Total (incl. mmap):")[-1]
        values = [int(m.group(1)) for m in re.finditer(r"bytes\s*=\s*(\d+)", total)][:2]
        if len(values) != 2:
            raise RuntimeError(f"no malloc_stats() report from the server (is gdb allowed to attach?):\n{text[-300:]}")
        self.readings.append((label, logins, values[1], values[0]))
        return self.readings[-1]


class HeaptrackProbe:
    """The heap in use at rest, where gdb cannot call into the server: heaptrack's
    preload library records every allocation and free of the server (LD_PRELOAD, set
    for the server alone), and the bytes in use at each rest are read from the
    record after the run. Slower than the gdb probe (every allocation is traced)."""

    LIBRARY = "/usr/lib/heaptrack/libheaptrack_preload.so"
    INTERPRET = "/usr/lib/heaptrack/libexec/heaptrack_interpret"

    def __init__(self, work):
        for tool in (self.LIBRARY, self.INTERPRET):
            if not os.path.exists(tool):
                raise RuntimeError(f"{tool} is missing (apt install heaptrack)")
        self.raw = os.path.join(work, "heaptrack.raw")
        self.marks = []  # (label, logins, seconds since the server started)
        self.readings = []  # (label, logins, in-use bytes, None)
        self.started = None
        self.kept = None

    def wrap(self, server):
        """Has `server` start with the preload library; call just before it starts."""
        server.command_prefix = ("env", f"LD_PRELOAD={self.LIBRARY}", f"DUMP_HEAPTRACK_OUTPUT={self.raw}")
        self.started = time.monotonic()

    def rests(self):
        return len(self.marks)

    def read(self, label, logins):
        """Marks the rest; its reading comes from the record after the run (None now)."""
        # Five seconds before the end of the rest: no login has started since.
        self.marks.append((label, logins, time.monotonic() - self.started - 5))
        return None

    def finish(self):
        """After the server stopped: the bytes in use at each mark. The record is kept
        as heaptrack.freeradius.gz, for heaptrack_print (where the memory went)."""
        interpreted = os.path.join(os.path.dirname(self.raw), "heaptrack.freeradius")
        with open(self.raw, "rb") as src, open(interpreted, "wb") as dst:
            subprocess.run([self.INTERPRET], stdin=src, stdout=dst, stderr=subprocess.DEVNULL, check=True)
        sizes, in_use = [], 0
        marks = list(self.marks)
        with open(interpreted, "rb") as f:
            for line in f:
                kind = line[:1]
                if kind == b"+":
                    in_use += sizes[int(line[2:], 16)]
                elif kind == b"-":
                    in_use -= sizes[int(line[2:], 16)]
                elif kind == b"a":
                    sizes.append(int(line.split()[1], 16))
                elif kind == b"c":
                    at = int(line[2:], 16) / 1000
                    while marks and marks[0][2] <= at:
                        label, logins, _ = marks.pop(0)
                        self.readings.append((label, logins, in_use, None))
        if marks:
            raise RuntimeError(f"heaptrack's record ends before the rest {marks[0][0]!r}: no reading")
        os.unlink(self.raw)
        subprocess.run(["gzip", "-1", "-f", interpreted], check=True)
        self.kept = interpreted + ".gz"


def say(text=""):
    print(text, flush=True)
    if RESULTS:
        RESULTS[0].write(text + "\n")
        RESULTS[0].flush()


RESULTS = []


def wait_for_step(pools_users, step_now):
    """Waits until every TOTP user about to be used is free in the current step."""
    waited = 0.0
    while True:
        step = step_now()
        if all(pool.free_at(users, step) for pool, users in pools_users):
            return step, waited
        pause = STEP - time.time() % STEP + 0.05
        time.sleep(pause)
        waited += pause


def verdict(samples, threshold_mib, warm_fraction):
    end = samples[-1][0]
    after = [s for s in samples if s[0] >= warm_fraction * end]
    base = after[0]
    peak = max(s[2] for s in after)
    growth = (peak - base[2]) / 1024
    last = (after[-1][2] - base[2]) / 1024
    # Least-squares slope of VmRSS over logins after warm-up, KiB per 10,000 logins.
    xs = [s[1] for s in after]
    ys = [s[2] for s in after]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    slope = (sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var * 10000) if var else 0.0
    return base, growth, last, slope, growth < threshold_mib


def main():
    ap = argparse.ArgumentParser(description="rlm_mfa soak run (see bench/soak.sh)")
    ap.add_argument("--module-dir", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--logins", type=int, default=300000, help="logins in all (at least)")
    ap.add_argument("--cycle", type=int, default=6000, help="logins per cycle, spread over the flows")
    ap.add_argument("--parallel", type=int, default=32, help="radclient -p, per radclient")
    ap.add_argument("--timeout", type=int, default=15,
                    help="radclient -t, seconds before the second of two tries (-r 2); more than a push's "
                         "wait (10 s) and less than half of challenge_timeout")
    ap.add_argument("--sample", type=float, default=5.0, help="seconds between VmRSS samples")
    # Every State answered is remembered until it expires (at most 100,000 per instance):
    # 30 s keeps that table small enough to reach its largest size within the warm-up.
    # An SMS code's State lives code_lifetime, made the same (at least its minimum, 30).
    ap.add_argument("--challenge-timeout", type=int, default=30, help="challenge_timeout of the instances")
    ap.add_argument("--warm", type=float, default=0.2, help="fraction of the run counted as warm-up")
    ap.add_argument("--rss-threshold", type=float, default=4.0, help="MiB of VmRSS growth allowed after warm-up")
    ap.add_argument("--stop-grace", type=float, default=10, help="seconds from SIGTERM to SIGKILL at the end")
    ap.add_argument("--no-rss-verdict", action="store_true",
                    help="report VmRSS without judging it (runs under valgrind)")
    ap.add_argument("--heap-check", action="store_true",
                    help="also read the heap's bytes in use (gdb) at rest after warm-up and at the end")
    ap.add_argument("--heaptrack", action="store_true",
                    help="as --heap-check, but read by heaptrack's preload library instead of gdb")
    ap.add_argument("--heap-threshold", type=float, default=1.0,
                    help="MiB the heap in use at rest may grow from warm-up to the end")
    ap.add_argument("--results", help="also write the report to this file")
    args = ap.parse_args()
    # The longest a State lives: challenge_timeout, or an SMS code's code_lifetime.
    state_lifetime = max(30, args.challenge_timeout)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # soak.sh runs this in the background, where SIGINT is ignored: it sends SIGTERM.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    if args.results:
        RESULTS.append(open(args.results, "w"))
    self_test()
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)

    # Shares of a cycle per flow (sum 1.0): the single-round flows carry most logins.
    share = {"otp_totp": 0.19, "otp_hotp": 0.20, "otp_wrong": 0.02, "pw_otp": 0.19, "pw_wrong": 0.02,
             "challenge": 0.15, "menu_sms": 0.09, "push": 0.08, "privacyidea": 0.05, "privacyidea_wrong": 0.01}
    per = {k: max(1, int(v * args.cycle)) for k, v in share.items()}
    # A TOTP user logs in at most once per 30 s step: each TOTP pool holds 8 cycles' worth,
    # and a cycle whose users were used in this step waits for the next one. All users
    # have logged in after 8 cycles (48,000 logins with the defaults, 16% of the run):
    # the module's per-user state is complete before the warm-up ends.
    pools = {
        "otp_totp": Pool("ot", 8 * per["otp_totp"], 1, "totp"),
        "otp_hotp": Pool("oh", 2 * per["otp_hotp"], 2, "hotp"),
        "otp_wrong": Pool("ow", per["otp_wrong"], 3, "totp"),
        "pw_otp": Pool("pw", 8 * per["pw_otp"], 4, "totp"),
        "pw_wrong": Pool("px", per["pw_wrong"], 5, "totp"),
        "challenge": Pool("ch", 8 * per["challenge"], 6, "totp"),
        "menu_sms": Pool("sm", 3 * per["menu_sms"], 7, None),
        "push": Pool("pu", 3 * per["push"], 8, None),
        # mfa_pi's users: the name starts with "pi" (and no other pool's does).
        "privacyidea": Pool("pi", 2 * per["privacyidea"], 9, None),
        "privacyidea_wrong": Pool("pix", per["privacyidea_wrong"], 10, None),
    }
    sms = FakeSms()
    push = FakePushApprover()
    pi = FakePrivacyIdea()

    def store(pool_names):
        # A push user needs an entry, empty: the provider knows the device.
        return json.dumps({"users": {u: {"tokens": [pools[name].token(u)]} if pools[name].kind else {}
                                     for name in pool_names for u in pools[name].names}})

    stores = {
        "mfa_otp": store(["otp_totp", "otp_hotp", "otp_wrong"]),
        "mfa_pw": store(["pw_otp", "pw_wrong"]),
        "mfa_chal": store(["challenge"]),
        # An app (a TOTP token) and an SMS number: the menu offers both.
        "mfa_menu": json.dumps({"users": {u: {"tokens": [{"serial": f"S-{u}", "type": "totp",
                                                         "secret": b32(pools["menu_sms"].keys[u])}],
                                              "sms": f"+4520{i:06d}"}
                                          for i, u in enumerate(pools["menu_sms"].names)}}),
        "mfa_push": store(["push"]),
        "mfa_pi": json.dumps({"users": {}}),  # unused: privacyIDEA knows the users
    }
    users_text = "".join(f'"{u}"\tCleartext-Password := "{p.passwords[u]}"\n'
                         for k, p in pools.items()
                         if k not in ("otp_totp", "otp_hotp", "otp_wrong", "privacyidea", "privacyidea_wrong")
                         for u in p.names)
    mods = {name: text.replace("{challenge_timeout}", str(args.challenge_timeout))
            .replace("{code_lifetime}", str(state_lifetime))
            .replace("{sms_url}", sms.url).replace("{push_url}", push.url).replace("{pi_url}", pi.url)
            .replace("{{", "{").replace("}}", "}")
            for name, text in MODULES.items()}
    tokens_path = os.path.join(work, "tokens-mfa_otp.json")
    write_file(tokens_path, stores["mfa_otp"], 0o640)
    server = Server(work, "soak", args.module_dir, SITE, mods, users_text, tokens_path, os.path.join(work, "pids"))
    for name, text in stores.items():
        write_file(os.path.join(server.dir, "mods-config/mfa", f"{name}.json"), text, 0o640)
    total_users = sum(len(p.names) for p in pools.values())

    say(f"== rlm_mfa soak, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}: "
        f"{os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    say(f"   at least {args.logins} logins in cycles of {sum(per.values())}: " +
        ", ".join(f"{k} {v}" for k, v in per.items()))
    say(f"   {total_users} users in 6 instances; radclient -p {args.parallel} -r 2 -t {args.timeout}, "
        f"one radclient per flow and round, all flows at once; challenge_timeout {args.challenge_timeout} s")
    heaptrack = HeaptrackProbe(work) if args.heaptrack else None
    if heaptrack:
        heaptrack.wrap(server)
    started = server.start()
    say(f"   server pid {server.proc.pid} ready after {started:.2f} s (freeradius -f, log {server.log})")

    drops_before = udp_receive_drops()
    done = {"logins": 0, "requests": 0}
    totals = {k: {"logins": 0, "lost": 0, "unexpected": 0} for k in per}
    examples = []
    sampler = Sampler(server.proc.pid, args.sample, lambda: done["logins"])
    waited_total = 0.0
    cycles = 0
    t_run = time.monotonic()

    def account(flow, jobs_of_flow, logins):
        lost = sum(j.lost for j in jobs_of_flow)
        bad = sum(len(j.unexpected) for j in jobs_of_flow)
        totals[flow]["lost"] += lost
        totals[flow]["unexpected"] += bad
        totals[flow]["logins"] += logins
        for j in jobs_of_flow:
            examples.extend((flow, j.name) + u for u in j.unexpected[:3])

    def step_now():
        return int(time.time()) // STEP

    def rest(probe, label, logins):
        # Every State answered is remembered until it expires; FreeRADIUS keeps a
        # request cleanup_delay (5 s) after its reply. Past both, only what lasts is left.
        pause = state_lifetime + 10
        say(f"   resting {pause} s ({label}), then reading the heap")
        time.sleep(pause)
        rested[0] += pause
        reading = probe.read(label, logins)
        if reading is None:
            say(f"   heap at rest {label}: read from heaptrack's record after the run")
            return
        _, _, in_use, system = reading
        say(f"   heap at rest {label}: {in_use / 2 ** 20:.2f} MiB in use, {system / 2 ** 20:.1f} MiB from the "
            f"system; VmRSS {sampler.rss() / 1024:.1f} MiB")

    heap = heaptrack or (HeapProbe(server.proc.pid, work) if args.heap_check else None)
    rested = [0.0]

    try:
        while done["logins"] < args.logins:
            cycles += 1
            picks = {k: pools[k].take(per[k]) for k in per}
            step, waited = wait_for_step([(pools[k], picks[k]) for k in ("otp_totp", "pw_otp", "challenge")],
                                         step_now)
            waited_total += waited
            P = pools
            accept, reject, chal = {"Access-Accept"}, {"Access-Reject"}, {"Access-Challenge"}

            def line(user, password, state=None):
                return (user, f'User-Name = "{user}", User-Password = "{password}"'
                        + (f", State = {state}" if state else ""))

            # Round 1 of every flow, all at once.
            a = {
                "otp_totp": Job("otp_totp", [line(u, P["otp_totp"].code(u, step)) for u in picks["otp_totp"]], accept, False),
                "otp_hotp": Job("otp_hotp", [line(u, P["otp_hotp"].code(u, step)) for u in picks["otp_hotp"]], accept, False),
                "otp_wrong": Job("otp_wrong", [line(u, P["otp_wrong"].wrong_code(u, step)) for u in picks["otp_wrong"]],
                                 reject, False),
                "pw_otp": Job("pw_otp", [line(u, f"{P['pw_otp'].passwords[u]},{P['pw_otp'].code(u, step)}")
                                         for u in picks["pw_otp"]], accept, False),
                # A wrong password with a right code: pap refuses it, the code is not used up.
                "pw_wrong": Job("pw_wrong", [line(u, f"not-{P['pw_wrong'].passwords[u]},{hotp(P['pw_wrong'].keys[u], step)}")
                                             for u in picks["pw_wrong"]], reject, False),
                "challenge": Job("challenge-1", [line(u, P["challenge"].passwords[u]) for u in picks["challenge"]], chal, True),
                "menu_sms": Job("menu-1", [line(u, P["menu_sms"].passwords[u]) for u in picks["menu_sms"]], chal, True),
                "push": Job("push-1", [line(u, P["push"].passwords[u]) for u in picks["push"]], accept | chal, True),
                # The whole field to privacyIDEA; -x: the Accept must carry Class from the groups.
                "privacyidea": Job("privacyidea", [line(u, PI_PASS) for u in picks["privacyidea"]], accept, True),
                "privacyidea_wrong": Job("privacyidea_wrong", [line(u, f"pin{int(PI_PASS[3:]) + 1:06d}")
                                                               for u in picks["privacyidea_wrong"]], reject, False),
            }
            run_jobs(list(a.values()), server.port, work, args.parallel, args.timeout)
            for u, (code, attrs) in a["privacyidea"].replies.items():
                if code == "Access-Accept" and attrs.get("Class") != PI_CLASS:
                    a["privacyidea"].unexpected.append((u, code, f"Class {attrs.get('Class')!r}, not {PI_CLASS}"))
            requests = sum(len(j.lines) for j in a.values())

            def answered(job, code):
                return [(u, r[1]["State"]) for u, r in job.replies.items() if r[0] == code and "State" in r[1]]

            # Round 2: the code for the challenge, "2" (SMS) for the menu, OK for the pushes
            # that were answered with a challenge.
            step2 = step_now()
            b = {
                "challenge": Job("challenge-2", [line(u, P["challenge"].code(u, max(step, step2)), s)
                                                 for u, s in answered(a["challenge"], "Access-Challenge")], accept, True),
                "menu_sms": Job("menu-2", [line(u, MENU_SMS_CHOICE, s) for u, s in answered(a["menu_sms"], "Access-Challenge")],
                                chal, True),
                "push": Job("push-2", [line(u, "ok", s) for u, s in answered(a["push"], "Access-Challenge")], accept, True),
            }
            run_jobs(list(b.values()), server.port, work, args.parallel, args.timeout)
            # Round 3: the code the SMS gateway was sent.
            c = Job("menu-3", [line(u, sms.codes.get(u, "000000"), s) for u, s in answered(b["menu_sms"], "Access-Challenge")],
                    accept, True)
            run_jobs([c], server.port, work, args.parallel, args.timeout)
            requests += sum(len(j.lines) for j in b.values()) + len(c.lines)

            for flow in ("otp_totp", "otp_hotp", "otp_wrong", "pw_otp", "pw_wrong", "privacyidea", "privacyidea_wrong"):
                account(flow, [a[flow]], len(a[flow].lines))
            account("challenge", [a["challenge"], b["challenge"]], len(a["challenge"].lines))
            account("menu_sms", [a["menu_sms"], b["menu_sms"], c], len(a["menu_sms"].lines))
            account("push", [a["push"], b["push"]], len(a["push"].lines))
            done["logins"] += sum(len(j.lines) for j in a.values())
            done["requests"] += requests
            if server.proc.poll() is not None:
                raise RuntimeError(f"the server died (exit status {server.proc.returncode}):\n" + tail(server.log, 30))
            bad = sum(t["lost"] + t["unexpected"] for t in totals.values())
            if cycles == 1 or cycles % 5 == 0 or done["logins"] >= args.logins:
                rss = sampler.rss() / 1024
                say(f"   cycle {cycles:3d}: {done['logins']:7d} logins, {done['requests']:7d} requests, "
                    f"{time.monotonic() - t_run:6.1f} s, VmRSS {rss:6.1f} MiB, lost or unexpected {bad}")
            if bad > 200:
                raise RuntimeError("more than 200 lost or unexpected replies: stopping")
            if heap and (heap.rests() == 0 and done["logins"] >= args.warm * args.logins
                         or done["logins"] >= args.logins):
                rest(heap, "after warm-up" if not heap.rests() else "at the end", done["logins"])
    except (RuntimeError, KeyboardInterrupt) as e:
        say(f"\nSTOPPED: {e}")
    finally:
        sampler.stop()
        elapsed = time.monotonic() - t_run
        with open(server.log, errors="replace") as f:
            log_text = f.read()
        proc = server.proc
        server.stop(grace=args.stop_grace)
        exit_status = proc.returncode
        if heap:
            try:
                heap.finish()
            except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
                say(f"\nNO HEAP READING: {e}")
        sms.peer.stop()
        push.peer.stop()
        pi.peer.stop()

    # ---------------------------------------------------------------- report
    lost = sum(t["lost"] for t in totals.values())
    unexpected = sum(t["unexpected"] for t in totals.values())
    say("")
    say(f"   {'flow':17} {'logins':>8} {'lost':>6} {'unexpected':>11}   expected reply")
    expect_text = {"otp_totp": "Accept", "otp_hotp": "Accept", "otp_wrong": "Reject (wrong code, then locked)",
                   "pw_otp": "Accept", "pw_wrong": "Reject (wrong password)",
                   "challenge": "Challenge, then Accept", "menu_sms": "menu, SMS prompt, then Accept",
                   "push": "Accept, or Challenge then Accept",
                   "privacyidea": "Accept, with Class from privacyIDEA's groups",
                   "privacyidea_wrong": "Reject (privacyIDEA: wrong PIN)"}
    for k, t in totals.items():
        say(f"   {k:17} {t['logins']:8d} {t['lost']:6d} {t['unexpected']:11d}   {expect_text[k]}")
    say(f"   {'all':17} {done['logins']:8d} {lost:6d} {unexpected:11d}   "
        f"({done['requests']} requests, {done['logins'] / (elapsed - rested[0]):.0f} logins/s, {elapsed:.0f} s"
        f"{f' ({rested[0]:.0f} s of it at rest)' if rested[0] else ''}, "
        f"{cycles} cycles, {waited_total:.0f} s waited for TOTP steps)")
    for ex in examples[:10]:
        say(f"   e.g. {ex}")
    shared = sum(p.shared for p in pools.values())
    say(f"   TOTP codes equal to the next step's (that step then used up, the user's next login waits): {shared}")
    say(f"   fake SMS gateway: {sms.sent} codes sent, {sms.peer.bad} bad calls; fake push provider: "
        f"{push.created} created, {push.polls} status reads, {push.cancelled} cancelled, {push.peer.bad} bad calls")
    # One /validate/check per privacyIDEA login, none lost on the way.
    pi_logins = totals["privacyidea"]["logins"] + totals["privacyidea_wrong"]["logins"]
    pi_ok = pi.peer.calls == pi_logins and pi.peer.bad == 0
    say(f"   fake privacyIDEA: {pi.peer.calls} calls for {pi_logins} logins ({pi.accepted} accepted, "
        f"{pi.rejected} rejected), {pi.peer.bad} bad calls{'' if pi_ok else ': NOT one call a login'}")
    # A request the kernel dropped (the server's UDP receive buffer full in a burst)
    # never reached the server: radclient counts it lost, as a NAS would re-send it.
    drops = None if drops_before is None or udp_receive_drops() is None else udp_receive_drops() - drops_before
    if drops is not None:
        say(f"   kernel: {drops} UDP datagrams dropped on receive during the run (RcvbufErrors, every socket "
            f"of the machine){': the lost requests never reached the server' if lost and drops >= lost else ''}")
    errors = [ln for ln in log_text.splitlines() if ": Error: " in ln]
    say(f"   server log: {len(errors)} error lines" + (f", e.g. {errors[0][-160:]!r}" if errors else "")
        + f"; exit status after SIGTERM: {exit_status}")

    samples = sampler.samples
    say("")
    say(f"   VmRSS every {args.sample:g} s (seconds: MiB):")
    row = [f"{s[0]:5.0f}:{s[2] / 1024:6.1f}" for s in samples]
    for i in range(0, len(row), 8):
        say("     " + "  ".join(row[i:i + 8]))
    if args.no_rss_verdict:
        say(f"   verdict: {'ZERO lost' if lost == 0 else f'{lost} LOST'}, {unexpected} unexpected replies "
            f"(VmRSS not judged)")
        ok = pi_ok and lost == 0 and unexpected == 0 and done["logins"] >= args.logins
    elif len(samples) >= 3:
        base, growth, last, slope, flat = verdict(samples, args.rss_threshold, args.warm)
        say(f"   warm-up: the first {args.warm:.0%} of the run ({base[0]:.0f} s, {base[1]} logins); "
            f"VmRSS then {base[2] / 1024:.1f} MiB, at the end {samples[-1][2] / 1024:.1f} MiB, "
            f"peak {max(s[2] for s in samples) / 1024:.1f} MiB")
        say(f"   growth after warm-up: peak {growth:+.2f} MiB, end {last:+.2f} MiB, trend {slope:+.1f} KiB "
            f"per 10,000 logins (threshold {args.rss_threshold:g} MiB)")
        say(f"   verdict: {'FLAT after warm-up' if flat else 'NOT FLAT'}; "
            f"{'ZERO lost' if lost == 0 else f'{lost} LOST'}, {unexpected} unexpected replies")
        ok = pi_ok and flat and lost == 0 and unexpected == 0 and done["logins"] >= args.logins
        if heap and len(heap.readings) == 2:
            (_, n0, a, _), (_, n1, b, _) = heap.readings
            held = (b - a) / 2 ** 20
            steady = held < args.heap_threshold
            say(f"   heap in use at rest: {a / 2 ** 20:.2f} MiB after {n0} logins, {b / 2 ** 20:.2f} MiB after {n1}: "
                f"{held:+.2f} MiB for {n1 - n0} more logins ({(b - a) / (n1 - n0):+.1f} bytes a login; threshold "
                f"{args.heap_threshold:g} MiB): {'NOTHING HELD' if steady else 'GROWING'}")
            if heap.kept:
                say(f"   every allocation of the server: heaptrack_print {heap.kept}")
            ok = ok and steady
        elif heap:
            ok = False  # the heap check was asked for and has no two readings
    else:
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
