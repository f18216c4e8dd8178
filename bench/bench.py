#!/usr/bin/env python3
# rlm_mfa benchmark driver (Python 3 standard library only). Started by
# bench/run.sh, which builds or finds the module; see bench/README.md.
#
# Part 1: requests per second through ONE FreeRADIUS server for three
# authentication paths, chosen per request by the user's entry in the users
# file (which sets control:Auth-Type):
#   pap   PAP alone (Cleartext-Password), the ceiling
#   totp  FreeRADIUS's own rlm_totp (control:TOTP-Secret)
#   mfa   rlm_mfa in otp mode, state journal on disk
# Every request is for a distinct user, with a code valid when it is sent, and
# every reply must be an Access-Accept.
#
# Part 2: start-up time and resident memory with a token store of many users
# against a store of one user.
#
# Part 3: TOTP logins per second through one server with two rlm_mfa instances
# (mfa_push, mfa_otp), with no push pending and with 200 pending at a fake push
# provider that never approves (8 logins wait in a thread, the others got a
# challenge), and the server's resident memory per pending push.
#
# Part 4: the privacyIDEA backend against a fast fake privacyIDEA
# (examples/fake_privacyidea.rs): requests per second of PAP, rlm_mfa with
# reuse_connections = yes and = no, through one server; then the latency each
# adds, one request at a time.
#
# Part 5: the shared state store: server CPU per accepted login of rlm_totp,
# rlm_mfa with its local journal and rlm_mfa with state_store = redis (a
# redis-server started here), interleaved; Redis's own CPU apart; the latency
# Redis adds, one login at a time; and instructions per login under callgrind.
#
# Part 6 (bench/cost.py): the server's cost of one accepted login, a FreeRADIUS
# of its own per path: instructions under callgrind, CPU time, system calls.
#
# SPDX-License-Identifier: GPL-2.0-or-later

import argparse
import base64
import gc
import hashlib
import hmac
import json
import os
import platform
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time

SECRET = "testing123"

# Parts 5 and 6 pin the FreeRADIUS under test to one CPU and everything that
# loads it (radclient, redis-server) to another (issue 14: "the server pinned to
# one core and the clients to the other"), so that the server's CPU per login is
# not the cost of the scheduler moving its threads between CPUs it shares with
# the load. None: nothing pinned (parts 1 to 4, --no-pin, or one CPU); otherwise
# the CPU of each role: "server", "load" and "redis" (the load's, or with
# --redis-beside-server the server's).
PINNED = None


def pinned(role):
    """The command prefix that pins a process of `role` ("server", "load", "redis"), or ()."""
    if PINNED is None:
        return ()
    return ("taskset", "-c", str(PINNED[role]))


class Pinning:
    """Pins what starts inside it (see PINNED), when `wanted` and there are CPUs for it."""

    def __init__(self, wanted, redis_beside_server):
        cpus = sorted(os.sched_getaffinity(0))
        self.cpus = None
        if wanted and len(cpus) >= 2 and shutil.which("taskset"):
            server, load = cpus[0], cpus[1]
            self.cpus = {"server": server, "load": load, "redis": server if redis_beside_server else load}

    def describe(self):
        if self.cpus is None:
            return "nothing pinned"
        server, load = self.cpus["server"], self.cpus["load"]
        if self.cpus["redis"] == server:
            return f"the server and redis-server pinned to CPU {server}; radclient and this script to CPU {load}"
        return f"the server pinned to CPU {server}; radclient, redis-server and this script to CPU {load}"

    def __enter__(self):
        global PINNED
        PINNED = self.cpus
        self.before = os.sched_getaffinity(0)
        if self.cpus is not None:
            # This process sends the one-at-a-time logins: it is load too.
            os.sched_setaffinity(0, {self.cpus["load"]})
        return self

    def __exit__(self, *_):
        global PINNED
        PINNED = None
        os.sched_setaffinity(0, self.before)


PATHS = ("pap", "totp", "mfa")
LABEL = {"pap": "PAP", "totp": "totp", "mfa": "rlm_mfa"}
# One-letter prefixes keep every User-Name the same length on all paths.
PREFIX = {"pap": "p", "totp": "t", "mfa": "m"}
STEP = 30
TICK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


# ---------------------------------------------------------------- TOTP

def hotp(key, counter, digits=6):
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


def b32(key):
    return base64.b32encode(key).decode("ascii").rstrip("=")


def self_test():
    # RFC 6238 appendix B, SHA1, T = 59 s and 1111111109 s (8 digits there).
    seed = b"12345678901234567890"
    assert hotp(seed, 59 // STEP, 8) == "94287082"
    assert hotp(seed, 1111111109 // STEP, 8) == "07081804"
    assert base64.b32decode(b32(seed)) == seed


# ---------------------------------------------------------------- servers

RADIUSD_CONF = """\
# Generated by bench/bench.py.
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = {dir}/var
sbindir = /usr/sbin
logdir = {dir}/log
raddbdir = {dir}
radacctdir = {dir}/acct
name = freeradius
confdir = ${{raddbdir}}
modconfdir = ${{confdir}}/mods-config
certdir = ${{confdir}}/certs
cadir = ${{confdir}}/certs
run_dir = {dir}/run
db_dir = {dir}/db
dictdir = /usr/share/freeradius
libdir = {module_dir}:/usr/lib/freeradius
pidfile = ${{run_dir}}/freeradius.pid
max_request_time = 30
cleanup_delay = 5
max_requests = 262144
hostname_lookups = no
log {{
	destination = files
	colourise = no
	file = ${{logdir}}/radius.log
	auth = no
	suppress_secrets = yes
}}
security {{
	allow_core_dumps = no
	max_attributes = 200
	reject_delay = 0
	status_server = no
}}
thread pool {{
	start_servers = 32
	max_servers = 32
	min_spare_servers = 4
	max_spare_servers = 32
	max_requests_per_server = 0
	auto_limit_acct = no
}}
client localhost {{
	ipaddr = 127.0.0.1
	secret = {secret}
	require_message_authenticator = no
	nas_type = other
}}
modules {{
	$INCLUDE mods-enabled/
}}
policy {{
}}
$INCLUDE sites-enabled/
"""

MOD_FILES = """\
files {
	filename = ${modconfdir}/files/authorize
}
"""
MOD_PAP = "pap {\n\tnormalise = yes\n}\n"
MOD_TOTP = "totp {\n}\n"
MOD_MFA = """\
mfa {
	mode = otp
	tokens = ${modconfdir}/mfa/tokens.json
	state = ${db_dir}/mfa/state.jsonl
	fsync = no
	require_token = yes
	totp_window = 1
}
"""

# Part 1: one server, three paths. The users file entry of each user sets
# control:Auth-Type (and the path's secret); the same `switch` runs for all.
SITE_THROUGHPUT = """\
server bench {{
listen {{
	type = auth
	ipaddr = 127.0.0.1
	port = {port}
}}
authorize {{
	files
	switch &control:Auth-Type {{
		case totp {{
			update request {{
				&TOTP-Password := &User-Password
			}}
		}}
		case mfa {{
			mfa
		}}
	}}
}}
authenticate {{
	Auth-Type PAP {{
		pap
	}}
	Auth-Type totp {{
		totp
	}}
	Auth-Type mfa {{
		mfa
	}}
}}
}}
"""

# Part 2: rlm_mfa alone; only the token file differs between the runs.
SITE_STORE = """\
server bench {{
listen {{
	type = auth
	ipaddr = 127.0.0.1
	port = {port}
}}
authorize {{
	mfa
}}
authenticate {{
	Auth-Type mfa {{
		mfa
	}}
}}
}}
"""


def error_lines(log_path):
    """The server log's error lines (none when the log cannot be read)."""
    try:
        with open(log_path, errors="replace") as f:
            return [line for line in f if ": Error: " in line]
    except OSError:
        return []


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_file(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def tail(path, lines=40):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return "(no file)"


class Server:
    """A FreeRADIUS process over a generated configuration directory."""

    running = []  # every started server, for cleanup
    # Run before "freeradius" (part 5 sets valgrind's command line here for its callgrind server).
    command_prefix = ()

    def __init__(self, work, name, module_dir, site, mods, users_text, tokens_path, pid_file):
        self.dir = os.path.join(work, name)
        self.port = free_port()
        self.proc = None
        self.pid_file = pid_file
        self.log = os.path.join(self.dir, "log", "radius.log")
        for sub in ("mods-enabled", "sites-enabled", "mods-config/files", "mods-config/mfa",
                    "log", "run", "var", "db/mfa", "acct"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        write_file(os.path.join(self.dir, "radiusd.conf"),
                   RADIUSD_CONF.format(dir=self.dir, module_dir=module_dir, secret=SECRET))
        for mod_name, text in mods.items():
            write_file(os.path.join(self.dir, "mods-enabled", mod_name), text)
        write_file(os.path.join(self.dir, "sites-enabled", "bench"), site.format(port=self.port))
        write_file(os.path.join(self.dir, "mods-config/files/authorize"), users_text)
        # A hard link (same inode, mode 0640) rather than a copy: big stores are written once.
        target = os.path.join(self.dir, "mods-config/mfa/tokens.json")
        if os.path.lexists(target):
            os.unlink(target)
        try:
            os.link(tokens_path, target)
        except OSError:
            with open(tokens_path) as f:
                write_file(target, f.read(), 0o640)

    def start(self, timeout=90):
        """Starts the server; returns seconds from launch to "Ready to process requests"."""
        if os.path.exists(self.log):
            os.unlink(self.log)
        out = open(os.path.join(self.dir, "log", "stdout.log"), "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [*pinned("server"), *self.command_prefix, "freeradius", "-f", "-l", self.log, "-d", self.dir],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
        out.close()
        Server.running.append(self)
        with open(self.pid_file, "a") as f:
            f.write(f"{self.proc.pid} {self.dir}\n")
        offset = 0
        while True:
            try:
                with open(self.log, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                if b"Ready to process requests" in chunk:
                    return time.monotonic() - t0
                # Re-read the last partial line next time.
                offset += max(0, chunk.rfind(b"\n") + 1)
            except FileNotFoundError:
                pass
            if self.proc.poll() is not None:
                raise BenchError(f"freeradius exited ({self.proc.returncode}) during start-up in {self.dir}:\n"
                                 + tail(self.log) + tail(os.path.join(self.dir, "log", "stdout.log")))
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"freeradius did not start within {timeout} s in {self.dir}:\n" + tail(self.log))
            time.sleep(0.005)

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime

    def status_kib(self, key):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        raise BenchError(f"no {key} in /proc/{self.proc.pid}/status")

    def stop(self, grace=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self in Server.running:
            Server.running.remove(self)
        self.proc = None

    @classmethod
    def stop_all(cls):
        for server in list(cls.running):
            try:
                server.stop()
            except Exception:
                pass


# ---------------------------------------------------------------- radclient

def step_now():
    return int(time.time()) // STEP


def wait_for_step_margin(margin):
    """Waits until at least `margin` seconds remain in the current 30 s step, so that
    the codes computed next stay in their step for the whole batch."""
    margin = min(margin, STEP - 2)
    waited = 0.0
    while True:
        left = STEP - (time.time() % STEP)
        if left >= margin:
            return waited
        pause = left + 0.05
        time.sleep(pause)
        waited += pause


def packets(names, passwords):
    return "".join(f'User-Name = "{n}", User-Password = "{p}"\n\n' for n, p in zip(names, passwords))


SUMMARY = {key: re.compile(rf"{key}\s*:\s*(\d+)") for key in ("Accepted", "Rejected", "Lost")}


def radclient(port, packet_files, parallel, clients, timeout):
    """Sends the packets of each file in `packet_files`, one radclient per file, at most
    `clients` of them running at once; returns (seconds, accepted, rejected, lost,
    radclient CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pending = list(packet_files)
    running = []
    outputs = []
    t0 = time.monotonic()
    try:
        while pending or running:
            while pending and len(running) < clients:
                packet_file = pending.pop(0)
                cmd = [*pinned("load"), "radclient", "-q", "-s", "-p", str(parallel), "-r", "1", "-t", "10",
                       "-f", packet_file, f"127.0.0.1:{port}", "auth", SECRET]
                out = open(packet_file + ".out", "w+")
                running.append((subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                                 stdin=subprocess.DEVNULL), out))
            if len(running) == 1 and not pending:
                try:
                    running[0][0].wait(max(0.1, timeout - (time.monotonic() - t0)))
                except subprocess.TimeoutExpired:
                    pass
            else:
                time.sleep(0.0005)
            for item in [r for r in running if r[0].poll() is not None]:
                running.remove(item)
                item[1].seek(0)
                outputs.append((item[1].read(), item[0].returncode))
                item[1].close()
            if time.monotonic() - t0 > timeout:
                raise BenchError(f"radclient did not finish within {timeout} s")
    finally:
        for proc, out in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()
    seconds = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    counts = {key: 0 for key in SUMMARY}
    for text, code in outputs:
        for key, rx in SUMMARY.items():
            m = rx.search(text)
            if not m:
                raise BenchError(f"no '{key}' in radclient's summary (exit {code}):\n{text[-2000:]}")
            counts[key] += int(m.group(1))
    client_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, counts["Accepted"], counts["Rejected"], counts["Lost"], client_cpu


# ---------------------------------------------------------------- part 1

def user_name(path, i):
    return f"{PREFIX[path]}{i:06d}"


def sanity_check(server, work, password):
    """On user 0 of each path: a wrong password or code must be rejected, then the
    right one accepted, so that the accepts measured next mean something."""
    wait_for_step_margin(5)
    step = step_now()
    wrong, right = [], []
    for path in PATHS:
        good = password(path, 0, step)
        near = {password(path, 0, s) for s in (step - 1, step, step + 1)}
        bad = next(f"{(int(good) + d) % 10 ** 6:06d}" for d in range(1, 10)
                   if f"{(int(good) + d) % 10 ** 6:06d}" not in near)
        wrong.append((user_name(path, 0), bad))
        right.append((user_name(path, 0), good))
    for pairs, want in ((wrong, "Rejected"), (right, "Accepted")):
        packet_file = os.path.join(work, "packets-sanity.txt")
        write_file(packet_file, packets([n for n, _ in pairs], [p for _, p in pairs]))
        _, acc, rej, lost, _ = radclient(server.port, [packet_file], 8, 1, 60)
        got = {"Accepted": acc, "Rejected": rej}[want]
        if got != len(pairs) or lost:
            raise BenchError(f"sanity check: {acc} accepted, {rej} rejected, {lost} lost of {len(pairs)}, "
                             f"all should be {want.lower()}; server log:\n" + tail(server.log, 30))


def part_throughput(args, work, pid_file):
    turn_size = args.chunk * args.clients  # requests of one path in one turn
    # User 0 of each path is for the sanity check, then the warm-up users, then the rounds'.
    per_path = 1 + args.warmup + args.rounds * args.users
    rng = random.Random(6238)
    say(f"\n== Part 1: throughput, {args.users} requests (distinct users) per path per round, "
        f"{args.rounds} rounds")
    say(f"   turns of {turn_size} requests per path ({args.clients} radclient -p {args.parallel} "
        f"x {args.chunk} packets), paths interleaved turn by turn in rotated order")
    say(f"   {per_path} users per path: {3 * per_path} users file entries, {per_path} rlm_mfa tokens")

    keys = {p: [rng.randbytes(20) for _ in range(per_path)] for p in ("totp", "mfa")}
    pap_passwords = [f"{rng.randrange(10 ** 6):06d}" for _ in range(per_path)]
    lines = []
    for i in range(per_path):
        lines.append(f'{user_name("pap", i)}\tAuth-Type := PAP, Cleartext-Password := "{pap_passwords[i]}"\n')
        lines.append(f'{user_name("totp", i)}\tAuth-Type := totp, TOTP-Secret := "{b32(keys["totp"][i])}"\n')
        lines.append(f'{user_name("mfa", i)}\tAuth-Type := mfa\n')
    users_text = "".join(lines)
    store = {"users": {user_name("mfa", i): {"tokens": [{
        "serial": f"B-{i:06d}", "type": "totp", "secret": b32(keys["mfa"][i]),
        "algorithm": "SHA1", "digits": 6, "period": STEP}]} for i in range(per_path)}}
    tokens_path = os.path.join(work, "tokens-throughput.json")
    write_file(tokens_path, json.dumps(store), 0o640)

    server = Server(work, "throughput", args.module_dir, SITE_THROUGHPUT,
                    {"files": MOD_FILES, "pap": MOD_PAP, "totp": MOD_TOTP, "mfa": MOD_MFA},
                    users_text, tokens_path, pid_file)
    started = server.start()
    say(f"   server ready on 127.0.0.1:{server.port} after {started:.2f} s (configuration in {server.dir})")

    def password(path, i, step):
        return pap_passwords[i] if path == "pap" else hotp(keys[path][i], step)

    longest = [0.3]
    next_user = {p: 1 for p in PATHS}

    def turn(path, count):
        """Sends `count` requests of `path`, one per fresh user; returns its measures."""
        first = next_user[path]
        next_user[path] += count
        idx = range(first, first + count)
        # rlm_totp accepts the current step only: never let a turn straddle a step boundary.
        left = STEP - time.time() % STEP
        if left < max(1.0, 3 * longest[0] + 0.3):
            time.sleep(left + 0.05)
        step = step_now()
        names = [user_name(path, i) for i in idx]
        passwords = [password(path, i, step) for i in idx]
        files = []
        for c in range(args.clients):
            lo, hi = c * args.chunk, min(count, (c + 1) * args.chunk)
            if lo < hi:
                files.append(os.path.join(work, f"packets-{path}-{c}.txt"))
                write_file(files[-1], packets(names[lo:hi], passwords[lo:hi]))
        cpu0 = server.cpu_seconds()
        seconds, acc, rej, lost, client_cpu = radclient(server.port, files, args.parallel,
                                                        args.clients, args.batch_timeout)
        server_cpu = server.cpu_seconds() - cpu0
        longest[0] = max(longest[0], seconds)
        if acc != count or rej or lost:
            raise BenchError(f"{LABEL[path]}: {acc} accepted, {rej} rejected, {lost} lost of {count} "
                             f"(every request must be accepted); server log:\n" + tail(server.log, 30))
        return seconds, server_cpu, client_cpu

    def interleaved(count, rotation):
        """`count` requests per path in turns A B C, B C A, C A B...; per path totals."""
        totals = {p: [0.0, 0.0, 0.0] for p in PATHS}
        done = 0
        k = 0
        while done < count:
            n = min(turn_size, count - done)
            shift = (rotation + k) % 3
            for path in PATHS[shift:] + PATHS[:shift]:
                for j, value in enumerate(turn(path, n)):
                    totals[path][j] += value
            if server.proc.poll() is not None:
                raise BenchError("the server died:\n" + tail(server.log))
            done += n
            k += 1
        return {p: {"rps": count / t[0], "seconds": t[0], "server_us": 1e6 * t[1] / count,
                    "client_us": 1e6 * t[2] / count} for p, t in totals.items()}

    try:
        sanity_check(server, work, password)
        say("   sanity: a wrong password or code is rejected and the right one accepted on each path")
        if args.warmup:
            interleaved(args.warmup, 0)
            say(f"   warm-up: {args.warmup} requests per path, all accepted")
        results = {p: [] for p in PATHS}
        for r in range(args.rounds):
            res = interleaved(args.users, r)
            for path in PATHS:
                results[path].append(res[path])
            say(f"   round {r + 1}: " + "; ".join(
                f"{LABEL[p]} {res[p]['rps']:6.0f} req/s (server CPU {res[p]['server_us']:.1f} us/req)"
                for p in PATHS))
        rss = server.status_kib("VmRSS")
    finally:
        server.stop()
    errors = error_lines(server.log)

    say("")
    say(f"   {'path':8} {'median req/s':>13}  {'all rounds (req/s)':<28} {'server CPU us/req':>18}"
        f" {'radclient CPU us/req':>21}")
    med = {}
    for path in PATHS:
        rps = [x["rps"] for x in results[path]]
        med[path] = statistics.median(rps)
        say(f"   {LABEL[path]:8} {med[path]:13.0f}  {' '.join(f'{x:.0f}' for x in rps):<28} "
            f"{statistics.median(x['server_us'] for x in results[path]):18.1f} "
            f"{statistics.median(x['client_us'] for x in results[path]):21.1f}")
    say(f"   (server VmRSS at the end: {rss / 1024:.1f} MiB; {len(errors)} error lines in its log"
        + (f", e.g. {errors[0].split(': Error: ', 1)[1].strip()!r})" if errors else ")"))
    say("")
    checks = []
    for other, target in (("pap", args.target_pap), ("totp", args.target_totp)):
        ratio = med["mfa"] / med[other]
        ok = ratio >= target
        checks.append(ok)
        paired = [m["rps"] / o["rps"] for m, o in zip(results["mfa"], results[other])]
        # CPU is read in clock ticks: a short run may see none at all on one path.
        other_us = statistics.median(x["server_us"] for x in results[other])
        cpu = (f"x{statistics.median(x['server_us'] for x in results['mfa']) / other_us:.2f}"
               if other_us > 0 else "not measured (run too short)")
        say(f"   rlm_mfa / {LABEL[other]:<4} = {ratio:5.3f}   (target >= {target:.2f})  {'PASS' if ok else 'MISS'}"
            f"   [round by round: {' '.join(f'{x:.3f}' for x in paired)}; server CPU per request {cpu}]")
    return checks


# ---------------------------------------------------------------- part 2

def part_store(args, work, pid_file):
    n = args.store_users
    rng = random.Random(4226)
    say(f"\n== Part 2: token store of {n} users vs 1 user ({args.store_runs} runs each, interleaved)")
    keys = [rng.randbytes(20) for _ in range(n)]

    def store_json(count):
        return json.dumps({"users": {f"u{i:06d}": {"tokens": [{
            "serial": f"S-{i:06d}", "type": "totp", "secret": b32(keys[i]),
            "algorithm": "SHA1", "digits": 6, "period": STEP}]} for i in range(count)}})

    paths = {}
    for count in (1, n):
        paths[count] = os.path.join(work, f"tokens-{count}.json")
        write_file(paths[count], store_json(count), 0o640)
    say(f"   token files: 1 user {os.path.getsize(paths[1])} bytes, {n} users "
        f"{os.path.getsize(paths[n]) / 2 ** 20:.1f} MiB")

    # A few requests after start-up: user 0 (in both stores) and users spread over the big one.
    probe = [0] + [(k * n) // 7 + 1 for k in range(1, 7) if (k * n) // 7 + 1 < n]
    probe = sorted(set(probe))
    say(f"   after each start: {len(probe)} probe requests, user u000000 (in both stores) and users "
        f"spread over the big store; the 1-user store accepts u000000 only")
    measures = {1: [], n: []}
    for run in range(args.store_runs):
        for count in (1, n):
            server = Server(work, f"store-{count}-{run}", args.module_dir, SITE_STORE, {"mfa": MOD_MFA},
                            "", paths[count], pid_file)
            try:
                seconds = server.start()
                rss_ready = server.status_kib("VmRSS")
                wait_for_step_margin(5)
                step = step_now()
                packet_file = os.path.join(work, "packets-store.txt")
                write_file(packet_file, packets([f"u{i:06d}" for i in probe],
                                                [hotp(keys[i], step) for i in probe]))
                _, acc, rej, lost, _ = radclient(server.port, [packet_file], 8, 1, 60)
                want = len(probe) if count == n else 1  # the 1-user store knows user 0 only
                if acc != want or lost:
                    raise BenchError(f"store of {count}: {acc} of {len(probe)} probe requests accepted, "
                                     f"{lost} lost, expected {want} accepted:\n" + tail(server.log, 30))
                time.sleep(0.3)
                rss = server.status_kib("VmRSS")
                hwm = server.status_kib("VmHWM")
            finally:
                server.stop()
            measures[count].append({"start": seconds, "rss": rss, "rss_ready": rss_ready, "hwm": hwm})
            say(f"   run {run + 1}, {count:>6} user(s): ready after {seconds:.3f} s, VmRSS {rss / 1024:.1f} MiB "
                f"(at start-up {rss_ready / 1024:.1f}, peak {hwm / 1024:.1f}), {acc}/{len(probe)} probes accepted")

    def med(count, key):
        return statistics.median(m[key] for m in measures[count])

    added_start = med(n, "start") - med(1, "start")
    added_rss = (med(n, "rss") - med(1, "rss")) / 1024
    added_hwm = (med(n, "hwm") - med(1, "hwm")) / 1024
    say("")
    say(f"   start-up, median: 1 user {med(1, 'start'):.3f} s, {n} users {med(n, 'start'):.3f} s")
    ok_start = added_start < args.target_start
    say(f"   added start-up time   = {added_start:6.3f} s     (target < {args.target_start:g} s)    "
        f"{'PASS' if ok_start else 'MISS'}")
    say(f"   VmRSS, median: 1 user {med(1, 'rss') / 1024:.1f} MiB, {n} users {med(n, 'rss') / 1024:.1f} MiB")
    ok_rss = added_rss < args.target_rss
    say(f"   added resident memory = {added_rss:6.1f} MiB   (target < {args.target_rss:g} MiB) "
        f"{'PASS' if ok_rss else 'MISS'}   (peak VmHWM added: {added_hwm:.1f} MiB)")
    return [ok_start, ok_rss]


# ---------------------------------------------------------------- part 3

# Two rlm_mfa instances in one server: mfa_push (mode push, a blocking wait for
# at most max_waiting logins, a challenge for the others) and mfa_otp (TOTP).
MOD_MFA_PUSH = """\
mfa mfa_push {
	mode = push
	tokens = ${modconfdir}/mfa_push/tokens.json
	state = ${db_dir}/mfa_push/state.jsonl
	state_key = ${modconfdir}/mfa_push/state.key
	fsync = no
	require_token = no
	push {
		url = "@URL@"
		approval = wait
		max_waiting = @MAX_WAITING@
		when_busy = challenge
		wait = @WAIT@
		timeout = 2
		poll_interval = 2
	}
}
"""
MOD_MFA_OTP = """\
mfa mfa_otp {
	mode = otp
	tokens = ${modconfdir}/mfa_otp/tokens.json
	state = ${db_dir}/mfa_otp/state.jsonl
	state_key = ${modconfdir}/mfa_otp/state.key
	fsync = no
	require_token = no
	totp_window = 1
}
"""

SITE_PUSH = """\
server bench {{
listen {{
	type = auth
	ipaddr = 127.0.0.1
	port = {port}
}}
authorize {{
	mfa_push
	mfa_otp
	files
	pap
}}
authenticate {{
	Auth-Type mfa_push {{
		if (!&State) {{
			pap
		}}
		mfa_push
	}}
	Auth-Type mfa_otp {{
		mfa_otp
	}}
	Auth-Type PAP {{
		pap
	}}
}}
}}
"""

PUSH_WAIT = 20          # push.wait of mfa_push, seconds
PUSH_MAX_WAITING = 8    # push.max_waiting of mfa_push
PUSH_TIMEOUT_MESSAGE = "did not answer the push in time"  # the module's log line for a wait that ran out


class FakePushProvider:
    """The generic push provider's HTTP contract (crates/mfa-core/src/channel/push/),
    on 127.0.0.1, in a thread of this process. It never approves: every push stays pending until it
    is cancelled. It counts creates, status reads and cancels."""

    def __init__(self):
        import http.server
        import threading
        fake = self
        self.lock = threading.Lock()
        self.pushes = {}      # id -> cancelled?
        self.by_request = {}  # request_id -> id
        self.created = 0
        self.polls = 0
        self.cancelled = 0
        self.errors = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # one request per connection, then close

            def log_message(self, *_):
                pass

            def answer(self, code, body=None):
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def route(self):
                path = self.path.split("?", 1)[0].split("#", 1)[0]
                if path.endswith("/push"):
                    return None
                prefix, _, push_id = path.rpartition("/")
                return push_id if prefix.endswith("/push") and push_id else ""

            def do_POST(self):
                if self.route() is not None:
                    return self.bad(404)
                try:
                    body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                    fields = [body[f] for f in ("user", "message", "client", "request_id")]
                    if not all(isinstance(v, str) for v in fields):
                        raise ValueError("not a string")
                except (ValueError, KeyError, TypeError):
                    return self.bad(400)
                with fake.lock:
                    known = fake.by_request.get(body["request_id"])
                    if known is not None:
                        code, push_id = 200, known
                    else:
                        fake.created += 1
                        code, push_id = 201, f"push-{fake.created}"
                        fake.by_request[body["request_id"]] = push_id
                        fake.pushes[push_id] = False
                    status = "expired" if fake.pushes[push_id] else "pending"
                self.answer(code, {"id": push_id, "status": status})

            def do_GET(self):
                push_id = self.route()
                with fake.lock:
                    cancelled = fake.pushes.get(push_id) if push_id else None
                    if cancelled is not None:
                        fake.polls += 1
                if cancelled is None:
                    return self.bad(404)
                self.answer(200, {"id": push_id, "status": "expired" if cancelled else "pending"})

            def do_DELETE(self):
                push_id = self.route()
                with fake.lock:
                    cancelled = fake.pushes.get(push_id) if push_id else None
                    if cancelled is False:
                        fake.pushes[push_id] = True
                        fake.cancelled += 1
                if cancelled is None:
                    return self.bad(404)
                self.answer(204)

            def bad(self, code):
                with fake.lock:
                    fake.errors += 1
                self.answer(code, {"error": "bad request" if code == 400 else "not found"})

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 1024  # all the pushes of a burst connect at once
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def counts(self):
        with self.lock:
            return {"created": self.created, "polls": self.polls, "cancelled": self.cancelled,
                    "errors": self.errors}

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def push_user(i):
    return f"p{i:05d}"


def totp_user(i):
    return f"t{i:06d}"


def part_push(args, work, pid_file):
    n = args.push_pending
    rounds = args.push_rounds
    turn_size = args.chunk
    per_measure = args.push_totp
    # TOTP user 0 is for the sanity check, then the warm-up users, then two measures per round.
    totp_users = 1 + args.warmup + rounds * 2 * per_measure
    push_users = 1 + rounds * n  # push user 0: the sanity check (wrong password)
    rng = random.Random(4430)
    say(f"\n== Part 3: TOTP logins/s with 0 and with {n} pushes pending, one server, {rounds} rounds")
    say(f"   mfa_push: mode push, approval = wait, max_waiting = {PUSH_MAX_WAITING}, when_busy = challenge, "
        f"wait = {PUSH_WAIT} s, poll_interval = 2 s; mfa_otp: mode otp")
    say(f"   {per_measure} TOTP logins (distinct users) per measure in turns of {turn_size} "
        f"(radclient -p {args.parallel}); {totp_users} TOTP users, {push_users} push users")

    keys = [rng.randbytes(20) for _ in range(totp_users)]
    push_passwords = [f"pw-{rng.randrange(10 ** 9):09d}" for _ in range(push_users)]
    users_text = "".join(f'{push_user(i)}\tCleartext-Password := "{push_passwords[i]}"\n'
                         for i in range(push_users))
    otp_store = {"users": {totp_user(i): {"tokens": [{
        "serial": f"P-{i:06d}", "type": "totp", "secret": b32(keys[i]),
        "algorithm": "SHA1", "digits": 6, "period": STEP}]} for i in range(totp_users)}}
    push_store = {"users": {push_user(i): {} for i in range(push_users)}}
    otp_path = os.path.join(work, "tokens-push-otp.json")
    write_file(otp_path, json.dumps(otp_store), 0o640)

    fake = FakePushProvider()
    push_proc = None
    server = None
    try:
        mods = {"files": MOD_FILES, "pap": MOD_PAP, "mfa_otp": MOD_MFA_OTP,
                "mfa_push": MOD_MFA_PUSH.replace("@URL@", fake.url)
                .replace("@MAX_WAITING@", str(PUSH_MAX_WAITING)).replace("@WAIT@", str(PUSH_WAIT))}
        server = Server(work, "push", args.module_dir, SITE_PUSH, mods, users_text, otp_path, pid_file)
        # Server() links the token file as mods-config/mfa/tokens.json; each instance has its own directory.
        for sub in ("mods-config/mfa_push", "mods-config/mfa_otp", "db/mfa_push", "db/mfa_otp"):
            os.makedirs(os.path.join(server.dir, sub), exist_ok=True)
        os.replace(os.path.join(server.dir, "mods-config/mfa/tokens.json"),
                   os.path.join(server.dir, "mods-config/mfa_otp/tokens.json"))
        write_file(os.path.join(server.dir, "mods-config/mfa_push/tokens.json"), json.dumps(push_store), 0o640)
        started = server.start()
        say(f"   server ready on 127.0.0.1:{server.port} after {started:.2f} s (configuration in {server.dir}); "
            f"fake push provider at {fake.url} (never approves)")

        next_totp = [1]

        def totp_turn(count):
            """`count` TOTP logins of fresh users; returns (seconds, server CPU seconds)."""
            first = next_totp[0]
            next_totp[0] += count
            if next_totp[0] > totp_users:
                raise BenchError("part 3 ran out of TOTP users")
            step = step_now()
            packet_file = os.path.join(work, "packets-push-totp.txt")
            write_file(packet_file, packets([totp_user(i) for i in range(first, first + count)],
                                            [hotp(keys[i], step) for i in range(first, first + count)]))
            cpu0 = server.cpu_seconds()
            seconds, acc, rej, lost, _ = radclient(server.port, [packet_file], args.parallel, 1,
                                                   args.batch_timeout)
            cpu = server.cpu_seconds() - cpu0
            if acc != count or rej or lost:
                raise BenchError(f"TOTP: {acc} accepted, {rej} rejected, {lost} lost of {count} "
                                 f"(every request must be accepted); server log:\n" + tail(server.log, 30))
            return seconds, cpu

        def totp_measure():
            seconds = cpu = 0.0
            done = 0
            while done < per_measure:
                k = min(turn_size, per_measure - done)
                s, c = totp_turn(k)
                seconds += s
                cpu += c
                done += k
            return {"rps": per_measure / seconds, "seconds": seconds, "server_us": 1e6 * cpu / per_measure}

        # Sanity: a wrong TOTP code is rejected and the right one accepted; a push user with a
        # wrong password is rejected by the first factor and sends no push.
        wait_for_step_margin(5)
        step = step_now()
        good = hotp(keys[0], step)
        near = {hotp(keys[0], s) for s in (step - 1, step, step + 1)}
        bad = next(c for c in (f"{(int(good) + d) % 10 ** 6:06d}" for d in range(1, 10)) if c not in near)
        for names, passwords, want in (([totp_user(0), push_user(0)], [bad, "wrong"], "Rejected"),
                                       ([totp_user(0)], [good], "Accepted")):
            packet_file = os.path.join(work, "packets-push-sanity.txt")
            write_file(packet_file, packets(names, passwords))
            _, acc, rej, lost, _ = radclient(server.port, [packet_file], 8, 1, 30)
            if (acc, rej, lost) != ((len(names), 0, 0) if want == "Accepted" else (0, len(names), 0)):
                raise BenchError(f"part 3 sanity check: {acc} accepted, {rej} rejected, {lost} lost of "
                                 f"{len(names)}, all should be {want.lower()}; server log:\n" + tail(server.log, 30))
        if fake.counts()["created"]:
            raise BenchError("part 3 sanity check: a push was created for a wrong password")
        say("   sanity: a wrong TOTP code and a push user's wrong password are rejected (no push sent), "
            "a right code accepted")
        if args.warmup:
            next_done = 0
            while next_done < args.warmup:
                k = min(turn_size, args.warmup - next_done)
                totp_turn(k)
                next_done += k
            say(f"   warm-up: {args.warmup} TOTP logins, all accepted")

        results = []
        next_push = 1
        for r in range(rounds):
            # Codes stay valid a step either side (totp_window = 1), but a round should not
            # begin in the last seconds of a step.
            wait_for_step_margin(3)
            time.sleep(args.push_settle)
            idle = totp_measure()
            rss_before = server.status_kib("VmRSS")
            before = fake.counts()
            users = list(range(next_push, next_push + n))
            next_push += n
            push_file = os.path.join(work, f"packets-push-{r + 1}.txt")
            write_file(push_file, packets([push_user(i) for i in users], [push_passwords[i] for i in users]))
            replies_file = os.path.join(work, f"replies-push-{r + 1}.txt")
            replies = open(replies_file, "w")
            # Not quiet: radclient prints "Received Access-Challenge Id ..." for each reply;
            # line-buffered, so that the challenges can be counted while the waiting logins run.
            t_push = time.monotonic()
            push_proc = subprocess.Popen(
                ["stdbuf", "-oL", "radclient", "-s", "-p", str(n), "-r", "1",
                 "-t", str(PUSH_WAIT + 8), "-f", push_file, f"127.0.0.1:{server.port}", "auth", SECRET],
                stdin=subprocess.DEVNULL, stdout=replies, stderr=subprocess.STDOUT)
            replies.close()
            challenged_now = n - min(n, PUSH_MAX_WAITING)

            def count_replies(word):
                with open(replies_file, errors="replace") as f:
                    return f.read().count(word)

            # All n created at the provider, and the logins past max_waiting answered.
            while True:
                created = fake.counts()["created"] - before["created"]
                challenged = count_replies("Received Access-Challenge")
                if created >= n and challenged >= challenged_now:
                    break
                if push_proc.poll() is not None or time.monotonic() - t_push > PUSH_WAIT / 2:
                    raise BenchError(f"round {r + 1}: {created} of {n} pushes created and {challenged} "
                                     f"challenges after {time.monotonic() - t_push:.1f} s; radclient:\n"
                                     + tail(replies_file, 10) + "server log:\n" + tail(server.log, 20))
                time.sleep(0.02)
            t_pending = time.monotonic() - t_push
            # The burst is over (its replies sent, the fake's handler threads done); the 200
            # pushes stay pending. Then memory, then the TOTP measure.
            time.sleep(args.push_settle)
            rss_pending = server.status_kib("VmRSS")
            busy = totp_measure()
            t_measured = time.monotonic() - t_push
            during = fake.counts()
            if during["cancelled"] != before["cancelled"] or t_measured >= PUSH_WAIT - 1:
                raise BenchError(f"round {r + 1}: the TOTP measure ended {t_measured:.1f} s after the pushes "
                                 f"began, when the waits ({PUSH_WAIT} s) were ending; use a smaller --push-totp")
            # Let the waiting logins end (no answer in time), then the next round.
            try:
                while push_proc.poll() is None:
                    if server.proc.poll() is not None:
                        raise BenchError(f"round {r + 1}: the server died (exit status {server.proc.returncode}) "
                                         f"while push logins were waiting:\n" + tail(server.log, 20))
                    if time.monotonic() - t_push > PUSH_WAIT + 20:
                        raise subprocess.TimeoutExpired(push_proc.args, PUSH_WAIT + 20)
                    time.sleep(0.1)
            except subprocess.TimeoutExpired:
                threads = []
                for tid in sorted(os.listdir(f"/proc/{server.proc.pid}/task")):
                    try:
                        with open(f"/proc/{server.proc.pid}/task/{tid}/wchan") as f:
                            wchan = f.read().strip()
                        with open(f"/proc/{server.proc.pid}/task/{tid}/stat") as f:
                            state = f.read().rsplit(")", 1)[1].split()[0]
                        threads.append(f"{tid}:{state}:{wchan}")
                    except OSError:
                        pass
                raise BenchError(f"round {r + 1}: the push logins did not end within {PUSH_WAIT + 20} s; "
                                 f"fake provider {fake.counts()} (before the round {before}); replies: "
                                 f"{count_replies('Received Access-Challenge')} challenges, "
                                 f"{count_replies('Received Access-Reject')} rejects; server threads "
                                 f"(tid:state:wchan): {' '.join(threads)}")
            t_ended = time.monotonic() - t_push
            push_proc = None
            text = open(replies_file, errors="replace").read()
            outcome = {word: text.count("Received " + word)
                       for word in ("Access-Challenge", "Access-Reject", "Access-Accept")}
            m = SUMMARY["Lost"].search(text)
            lost = int(m.group(1)) if m else -1
            after = fake.counts()
            waiting = n - outcome["Access-Challenge"]
            if (outcome["Access-Challenge"] != challenged_now or outcome["Access-Reject"] != waiting
                    or outcome["Access-Accept"] or lost):
                raise BenchError(f"round {r + 1}: push logins got {outcome}, {lost} lost; expected "
                                 f"{challenged_now} challenges and {n - challenged_now} rejects (no answer "
                                 f"in time):\n" + tail(replies_file, 10) + tail(server.log, 20))
            results.append({
                "idle": idle, "busy": busy, "created": after["created"] - before["created"],
                "polls": during["polls"] - before["polls"], "cancelled": after["cancelled"] - before["cancelled"],
                "waiting": waiting, "rss_before": rss_before, "rss_pending": rss_pending,
                "t_pending": t_pending, "t_measured": t_measured, "t_ended": t_ended})
            rss_per_push = (rss_pending - rss_before) / n
            say(f"   round {r + 1}: 0 pending {idle['rps']:6.0f} req/s; {n} pending {busy['rps']:6.0f} req/s "
                f"(ratio {busy['rps'] / idle['rps']:.3f}; server CPU {idle['server_us']:.1f} -> "
                f"{busy['server_us']:.1f} us/req)")
            say(f"            {n} created in {t_pending:.2f} s ({waiting} waiting, {outcome['Access-Challenge']} "
                f"challenged); measure done at +{t_measured:.1f} s; waits ended in a reject at +{t_ended:.1f} s; "
                f"VmRSS {rss_before / 1024:.1f} -> {rss_pending / 1024:.1f} MiB ({rss_per_push:+.1f} KiB/push)")
            time.sleep(1)  # the rejects' cleanup_delay is not the next round's concern, but settle a little
        with open(server.log, errors="replace") as f:
            log_text = f.read()
        timeouts = log_text.count(PUSH_TIMEOUT_MESSAGE)
        errors = [line for line in log_text.splitlines() if ": Error: " in line]
        rss_end = server.status_kib("VmRSS")
    finally:
        if push_proc is not None and push_proc.poll() is None:
            push_proc.kill()
            push_proc.wait()
        fake.stop()
        if server is not None:
            # On exit FreeRADIUS waits for its threads: logins still waiting for a push
            # would hold it up to push.wait seconds.
            server.stop(grace=2)

    idle = statistics.median(x["idle"]["rps"] for x in results)
    busy = statistics.median(x["busy"]["rps"] for x in results)
    ratio = busy / idle
    ok = ratio >= args.target_push
    paired = [x["busy"]["rps"] / x["idle"]["rps"] for x in results]
    per_push = [(x["rss_pending"] - x["rss_before"]) / n for x in results]
    counts = fake.counts()
    say("")
    idle_rounds = " ".join(f"{x['idle']['rps']:.0f}" for x in results)
    busy_rounds = " ".join(f"{x['busy']['rps']:.0f}" for x in results)
    say(f"   TOTP req/s, median: 0 pushes pending {idle:.0f}, {n} pushes pending {busy:.0f}   "
        f"[rounds: {idle_rounds} / {busy_rounds}]")
    say(f"   {n} pending / 0 pending = {ratio:5.3f}   (target >= {args.target_push:.2f})  "
        f"{'PASS' if ok else 'MISS'}   [round by round: {' '.join(f'{x:.3f}' for x in paired)}]")
    say(f"   pushes created at the fake provider: {counts['created']} ({', '.join(str(x['created']) for x in results)} "
        f"per round); status reads {counts['polls']}, cancels {counts['cancelled']} (the waits that ran out), "
        f"bad calls {counts['errors']}; {timeouts} 'no answer in time' log lines")
    say(f"   memory per pending push: at most {max(per_push):.1f} KiB (largest round; rounds: "
        f"{' '.join(f'{x:.1f}' for x in per_push)} KiB, median {statistics.median(per_push):.1f}) = "
        f"(VmRSS while {n} are pending - VmRSS just before) / {n}, an upper bound")
    say(f"   (server VmRSS at the end: {rss_end / 1024:.1f} MiB; {len(errors)} error lines in its log"
        + (f", e.g. {errors[0].split(': Error: ', 1)[1].strip()!r})" if errors else ")"))
    return [ok]


# ---------------------------------------------------------------- part 4

# Two rlm_mfa instances with backend = privacyidea in one server, the same in all
# but reuse_connections; a fast fake privacyIDEA (examples/fake_privacyidea.rs)
# answers both. The timeouts keep poll_wait + 3 x timeout under max_request_time.
MOD_MFA_PI = """\
mfa @NAME@ {
	mode = otp
	backend = privacyidea
	state = ${db_dir}/@NAME@/state.jsonl
	state_key = ${modconfdir}/@NAME@/state.key
	privacyidea {
		url = "@URL@"
		realm = "corp"
		timeout = 5
		poll_wait = 10
		reuse_connections = @REUSE@
	}
	reply Class {
		from = "user.groups"
		match = "^vpn-(.*)$"
	}
}
"""

# As part 1: the users file sets control:Auth-Type per user, one switch for all.
SITE_PI = """\
server bench {{
listen {{
	type = auth
	ipaddr = 127.0.0.1
	port = {port}
}}
authorize {{
	files
	switch &control:Auth-Type {{
		case mfa {{
			mfa
		}}
		case mfa_noreuse {{
			mfa_noreuse
		}}
	}}
}}
authenticate {{
	Auth-Type PAP {{
		pap
	}}
	Auth-Type mfa {{
		mfa
	}}
	Auth-Type mfa_noreuse {{
		mfa_noreuse
	}}
}}
}}
"""

PI_PATHS = ("pap", "pi", "pinr")
PI_LABEL = {"pap": "PAP", "pi": "pi reuse", "pinr": "pi no reuse"}
# Same length on every path; "r" for reuse, "n" for no reuse.
PI_PREFIX = {"pap": "p", "pi": "r", "pinr": "n"}
PI_AUTH_TYPE = {"pap": "PAP", "pi": "mfa", "pinr": "mfa_noreuse"}
PI_PASS = "pin123456"   # what the fake accepts; also every PAP user's password
PI_WRONG = "pin000000"  # what it rejects


class FakePrivacyIdeaProcess:
    """examples/fake_privacyidea --stdin: prints its port, then answers each line on
    its standard input with the TCP connections it has accepted; it exits when that
    input closes, so it never outlives this script."""

    def __init__(self, binary, log_path):
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([binary, "--stdin", "0"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log, text=True, bufsize=1)
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "port":
            self.stop()
            raise BenchError(f"{binary} did not print its port (got {line!r}); see {log_path}")
        self.url = f"http://127.0.0.1:{int(line[1])}"

    def connections(self):
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "connections":
            raise BenchError(f"the fake privacyIDEA did not answer (exit status {self.proc.poll()})")
        return int(line[1])

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def stop(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class RadiusClient:
    """Access-Requests one at a time over UDP (RFC 2865), each timed from send to
    the matching reply; the reply's authenticator is checked."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.sock.settimeout(10)
        self.ident = 0
        self.secret = SECRET.encode()

    def packet(self, user, password):
        """A ready packet and its request authenticator, built before the clock starts."""
        self.ident = (self.ident + 1) & 0xFF
        authenticator = os.urandom(16)
        plain = password.encode()
        plain += b"\0" * (-len(plain) % 16)
        hidden, last = b"", authenticator
        for i in range(0, len(plain), 16):  # RFC 2865 5.2
            mask = hashlib.md5(self.secret + last).digest()
            last = bytes(a ^ b for a, b in zip(plain[i:i + 16], mask))
            hidden += last
        name = user.encode()
        attrs = bytes([1, 2 + len(name)]) + name + bytes([2, 2 + len(hidden)]) + hidden
        return struct.pack("!BBH", 1, self.ident, 20 + len(attrs)) + authenticator + attrs, authenticator

    def send(self, packet, authenticator):
        """Returns (reply code, seconds from send to reply)."""
        t0 = time.perf_counter()
        self.sock.send(packet)
        while True:
            reply = self.sock.recv(4096)
            t1 = time.perf_counter()
            if len(reply) >= 20 and reply[1] == packet[1]:
                break
        length = struct.unpack("!H", reply[2:4])[0]
        expected = hashlib.md5(reply[:4] + authenticator + reply[20:length] + self.secret).digest()
        if reply[4:20] != expected:
            raise BenchError("a reply with a wrong Response Authenticator")
        return reply[0], t1 - t0

    def close(self):
        self.sock.close()


def percentile(values, p):
    """The nearest-rank percentile (p in 0..100) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, -(-len(ordered) * p // 100) - 1))]


def part_privacyidea(args, work, pid_file):
    users = args.chunk  # each path's users; every turn sends each of them once
    per_round = args.pi_users
    if not args.fake_privacyidea or not os.access(args.fake_privacyidea, os.X_OK):
        raise BenchError(f"part 4 needs the fake privacyIDEA program (--fake-privacyidea, got "
                         f"{args.fake_privacyidea!r}): cargo build --release --example fake_privacyidea")
    say(f"\n== Part 4: privacyIDEA backend against a fast fake privacyIDEA, {per_round} requests per path "
        f"per round, {args.pi_rounds} rounds; then {args.pi_latency} sequential requests per path")
    say("   The fake answers at once (no database, no token check, plain HTTP on loopback), so the\n"
        "   figures are rlm_mfa's own work plus one HTTP call on loopback, not privacyIDEA's speed.\n"
        "   It runs on this machine and takes CPU from the server; its share is shown.")
    say(f"   paths: PAP (users file), mfa (backend privacyidea, reuse_connections = yes), mfa_noreuse "
        f"(the same, reuse_connections = no); {users} users per path, turns of {users} requests "
        f"(radclient -p {args.parallel}), paths interleaved in rotated order")

    lines = []
    for i in range(users):
        lines.append(f'{PI_PREFIX["pap"]}{i:06d}\tAuth-Type := PAP, Cleartext-Password := "{PI_PASS}"\n')
        for path in ("pi", "pinr"):
            lines.append(f'{PI_PREFIX[path]}{i:06d}\tAuth-Type := {PI_AUTH_TYPE[path]}\n')
    tokens_path = os.path.join(work, "tokens-pi.json")  # not read by backend = privacyidea
    write_file(tokens_path, '{"users": {}}', 0o640)

    fake = FakePrivacyIdeaProcess(args.fake_privacyidea, os.path.join(work, "fake-privacyidea.log"))
    server = None
    try:
        mods = {"files": MOD_FILES, "pap": MOD_PAP}
        for name, reuse in (("mfa", "yes"), ("mfa_noreuse", "no")):
            mods[name] = MOD_MFA_PI.replace("@NAME@", name).replace("@URL@", fake.url).replace("@REUSE@", reuse)
        server = Server(work, "privacyidea", args.module_dir, SITE_PI, mods, "".join(lines), tokens_path, pid_file)
        for sub in ("mods-config/mfa_noreuse", "db/mfa_noreuse"):
            os.makedirs(os.path.join(server.dir, sub), exist_ok=True)
        started = server.start()
        say(f"   server ready on 127.0.0.1:{server.port} after {started:.2f} s (configuration in {server.dir}); "
            f"fake privacyIDEA at {fake.url} (pid {fake.proc.pid})")

        packet_files = {}
        for path in PI_PATHS:
            packet_files[path] = os.path.join(work, f"packets-pi-{path}.txt")
            names = [f"{PI_PREFIX[path]}{i:06d}" for i in range(users)]
            write_file(packet_files[path], packets(names, [PI_PASS] * users))

        # Sanity: a wrong password is rejected and the right one accepted on each path,
        # and the privacyIDEA paths really asked the fake.
        before = fake.connections()
        for password, want in ((PI_WRONG, "Rejected"), (PI_PASS, "Accepted")):
            sanity_file = os.path.join(work, "packets-pi-sanity.txt")
            write_file(sanity_file, packets([f"{PI_PREFIX[p]}000000" for p in PI_PATHS], [password] * 3))
            _, acc, rej, lost, _ = radclient(server.port, [sanity_file], 8, 1, 30)
            if (acc, rej, lost) != ((3, 0, 0) if want == "Accepted" else (0, 3, 0)):
                raise BenchError(f"part 4 sanity check: {acc} accepted, {rej} rejected, {lost} lost of 3, all "
                                 f"should be {want.lower()}; server log:\n" + tail(server.log, 30))
        if fake.connections() == before:
            raise BenchError("part 4 sanity check: the fake privacyIDEA was never asked")
        say("   sanity: a wrong password is rejected and the right one accepted on each path; the fake was asked")

        def turn(path, count):
            """`count` requests of `path` (count <= users); returns its measures."""
            packet_file = packet_files[path]
            if count < users:
                packet_file = os.path.join(work, f"packets-pi-{path}-part.txt")
                write_file(packet_file, packets([f"{PI_PREFIX[path]}{i:06d}" for i in range(count)],
                                                [PI_PASS] * count))
            conns0, fake0, cpu0 = fake.connections(), fake.cpu_seconds(), server.cpu_seconds()
            seconds, acc, rej, lost, client_cpu = radclient(server.port, [packet_file], args.parallel, 1,
                                                            args.batch_timeout)
            server_cpu, fake_cpu = server.cpu_seconds() - cpu0, fake.cpu_seconds() - fake0
            conns = fake.connections() - conns0
            if acc != count or rej or lost:
                raise BenchError(f"{PI_LABEL[path]}: {acc} accepted, {rej} rejected, {lost} lost of {count} "
                                 f"(every request must be accepted); server log:\n" + tail(server.log, 30))
            return [seconds, server_cpu, client_cpu, fake_cpu, conns]

        def interleaved(count, rotation):
            totals = {p: [0.0] * 5 for p in PI_PATHS}
            done = k = 0
            while done < count:
                n = min(users, count - done)
                shift = (rotation + k) % 3
                for path in PI_PATHS[shift:] + PI_PATHS[:shift]:
                    totals[path] = [a + b for a, b in zip(totals[path], turn(path, n))]
                if server.proc.poll() is not None:
                    raise BenchError("the server died:\n" + tail(server.log))
                done += n
                k += 1
            cpus = os.cpu_count() or 1
            return {p: {"rps": count / t[0], "server_us": 1e6 * t[1] / count, "client_us": 1e6 * t[2] / count,
                        "fake_us": 1e6 * t[3] / count, "fake_share": t[3] / (t[0] * cpus),
                        "conns": t[4] / count} for p, t in totals.items()}

        if args.warmup:
            interleaved(args.warmup, 0)
            say(f"   warm-up: {args.warmup} requests per path, all accepted")
        results = {p: [] for p in PI_PATHS}
        for r in range(args.pi_rounds):
            res = interleaved(per_round, r)
            for path in PI_PATHS:
                results[path].append(res[path])
            say(f"   round {r + 1}: " + "; ".join(
                f"{PI_LABEL[p]} {res[p]['rps']:6.0f} req/s (server CPU {res[p]['server_us']:.1f} us/req)"
                for p in PI_PATHS))

        # Latency: one request at a time, the paths taking turns request by request.
        client = RadiusClient(server.port)
        latency = {p: [] for p in PI_PATHS}
        conns0 = fake.connections()
        gc.disable()  # no collector pause inside a timed request
        try:
            for i in range(args.pi_latency_warmup + args.pi_latency):
                shift = i % 3
                for path in PI_PATHS[shift:] + PI_PATHS[:shift]:
                    packet, authenticator = client.packet(f"{PI_PREFIX[path]}{i % users:06d}", PI_PASS)
                    code, seconds = client.send(packet, authenticator)
                    if code != 2:
                        raise BenchError(f"{PI_LABEL[path]}: a sequential request got code {code}, not "
                                         f"Access-Accept; server log:\n" + tail(server.log, 30))
                    if i >= args.pi_latency_warmup:
                        latency[path].append(seconds)
        except socket.timeout:
            raise BenchError("a sequential request got no answer in 10 s; server log:\n" + tail(server.log, 30))
        finally:
            gc.enable()
            client.close()
        latency_conns = fake.connections() - conns0
        rss = server.status_kib("VmRSS")
        fake_rss = 0
        with open(f"/proc/{fake.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    fake_rss = int(line.split()[1])
    finally:
        if server is not None:
            server.stop()
        fake.stop()
    errors = error_lines(server.log)

    def med(path, key):
        return statistics.median(x[key] for x in results[path])

    say("")
    say(f"   {'path':12} {'median req/s':>12}  {'all rounds (req/s)':<30} {'server CPU':>10} {'radclient':>10}"
        f" {'fake CPU':>9} {'fake share':>10} {'connections':>11}")
    say(f"   {'':12} {'':>12}  {'':<30} {'us/req':>10} {'us/req':>10} {'us/req':>9} {'of CPUs':>10}"
        f" {'per request':>11}")
    for path in PI_PATHS:
        rps = " ".join(f"{x['rps']:.0f}" for x in results[path])
        say(f"   {PI_LABEL[path]:12} {med(path, 'rps'):12.0f}  {rps:<30} {med(path, 'server_us'):10.1f} "
            f"{med(path, 'client_us'):10.1f} {med(path, 'fake_us'):9.1f} {100 * med(path, 'fake_share'):9.1f}% "
            f"{med(path, 'conns'):11.3f}")
    say(f"   (server VmRSS at the end: {rss / 1024:.1f} MiB, fake privacyIDEA {fake_rss / 1024:.1f} MiB; "
        f"{len(errors)} error lines in the server log"
        + (f", e.g. {errors[0].split(': Error: ', 1)[1].strip()!r})" if errors else ")"))
    say("")
    for num, den in (("pi", "pap"), ("pinr", "pap"), ("pinr", "pi")):
        paired = [a["rps"] / b["rps"] for a, b in zip(results[num], results[den])]
        say(f"   {PI_LABEL[num]:>11} / {PI_LABEL[den]:<8} = {med(num, 'rps') / med(den, 'rps'):5.3f}   "
            f"[round by round: {' '.join(f'{x:.3f}' for x in paired)}; server CPU per request "
            f"x{med(num, 'server_us') / med(den, 'server_us'):.2f}]")

    say("")
    say(f"   Latency, one request at a time ({args.pi_latency} per path after {args.pi_latency_warmup} unmeasured, "
        f"paths taking turns), send to reply in this script:")
    say(f"   {'path':12} {'median us':>10} {'p90 us':>8} {'p99 us':>8} {'added median':>13} {'added p99':>10}")
    base = {"median": statistics.median(latency["pap"]), "p99": percentile(latency["pap"], 99)}
    for path in PI_PATHS:
        values = latency[path]
        m, p90, p99 = statistics.median(values), percentile(values, 90), percentile(values, 99)
        added = "" if path == "pap" else f"{1e6 * (m - base['median']):+13.0f} {1e6 * (p99 - base['p99']):+10.0f}"
        say(f"   {PI_LABEL[path]:12} {1e6 * m:10.0f} {1e6 * p90:8.0f} {1e6 * p99:8.0f} {added}")
    say(f"   (added = this path's figure - PAP's: what the module and its HTTP call add to a request; "
        f"{latency_conns} connections to the fake during the {2 * args.pi_latency_warmup + 2 * args.pi_latency} "
        f"privacyIDEA requests)")
    say(f"   (load average at the end of part 4: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
        f"on a busy machine the rates and the p90/p99 vary from run to run)")
    return []


# ---------------------------------------------------------------- part 5

# Two rlm_mfa instances in one server, the same but for the state store: `mfa`
# keeps its state in its local journal (state_store = journal, the default),
# `mfa_redis` in a Redis started by this script (state_store = redis).
MOD_MFA_STORE = """\
mfa @NAME@ {
	mode = otp
	tokens = ${modconfdir}/@NAME@/tokens.json
	state = ${db_dir}/@NAME@/state.jsonl
	state_key = ${modconfdir}/@NAME@/state.key
	fsync = no
	require_token = yes
	totp_window = 1
	state_store = @STORE@
@REDIS@}
"""
MOD_REDIS_SECTION = """\
	redis {
		server = "127.0.0.1:@PORT@"
		prefix = "bench"
	}
"""

# Part 5: part 1's site, with a third instance (the Redis store) beside the journal.
SITE_STORES = (
    SITE_THROUGHPUT.replace("\tAuth-Type PAP {{\n\t\tpap\n\t}}\n", "")
    .replace("\t\tcase mfa {{\n\t\t\tmfa\n\t\t}}\n",
             "\t\tcase mfa {{\n\t\t\tmfa\n\t\t}}\n\t\tcase mfa_redis {{\n\t\t\tmfa_redis\n\t\t}}\n")
    .replace("\tAuth-Type mfa {{\n\t\tmfa\n\t}}\n",
             "\tAuth-Type mfa {{\n\t\tmfa\n\t}}\n\tAuth-Type mfa_redis {{\n\t\tmfa_redis\n\t}}\n")
)

ST_PATHS = ("totp", "journal", "redis")
ST_LABEL = {"totp": "totp", "journal": "mfa journal", "redis": "mfa redis"}
ST_PREFIX = {"totp": "t", "journal": "j", "redis": "r"}
CALLGRIND_WARMUP = 20  # logins per path under callgrind before the counted ones


def stat_cpu_split(pid):
    """(user, system) CPU seconds of `pid` from /proc/PID/stat, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK


def task_cpu_seconds(pid):
    """User + system CPU time of every live thread of `pid`, from
    /proc/PID/task/*/schedstat (nanoseconds; /proc/PID/stat counts 10 ms ticks).
    A thread that has ended takes its time with it: FreeRADIUS's pool here never
    ends one, and neither does Redis."""
    total = 0
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        raise BenchError(f"process {pid} is gone")
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended just now
    return total / 1e9


# A bare client of Redis, run by RedisProcess.bare_round_trip: one HGET at a time over a
# TCP connection to 127.0.0.1 (TCP_NODELAY, as the module's client), its own CPU time
# per round trip in the kernel (its user time is Python's, and left out).
BARE_ROUND_TRIP = r"""
import resource, socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
cmd = b"*3\r\n$4\r\nHGET\r\n$10\r\nbench:bare\r\n$3\r\nt:1\r\n"
def trips(k):
    for _ in range(k):
        s.sendall(cmd)
        reply = b""
        while not reply.endswith(b"\r\n"):
            reply += s.recv(64)
trips(200)
r0 = resource.getrusage(resource.RUSAGE_SELF)
trips(n)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(1e6 * (r1.ru_stime - r0.ru_stime) / n)
"""


class RedisProcess:
    """A redis-server on a free loopback port, persisting nothing, with a small
    RESP client for INFO and checks."""

    def __init__(self, bin_dir, work, pid_file):
        self.dir = os.path.join(work, "redis")
        os.makedirs(self.dir, exist_ok=True)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        conf = os.path.join(self.dir, "redis.conf")
        self.log = os.path.join(self.dir, "redis.log")
        write_file(conf, f'port {self.port}\nbind 127.0.0.1\ndir {self.dir}\nlogfile {self.log}\n'
                         f'save ""\nappendonly no\n')
        # .deps/redis/bin/redis-server is a script that execs the server: same pid.
        self.proc = subprocess.Popen([*pinned("redis"), os.path.join(bin_dir, "redis-server"), conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        with open(pid_file, "a") as f:
            f.write(f"{self.proc.pid} {self.dir} redis\n")  # run.sh's safety net checks its cwd
        self.sock = None
        self.buf = b""
        t0 = time.monotonic()
        while True:
            try:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                if self.command("PING") == "PONG":
                    break
            except (OSError, BenchError):
                if self.sock is not None:
                    self.sock.close()
                    self.sock = None
            if self.proc.poll() is not None or time.monotonic() - t0 > 10:
                raise BenchError(f"redis-server did not start on 127.0.0.1:{self.port}:\n" + tail(self.log))
            time.sleep(0.02)
        self.version = self.info("server").get("redis_version", "?")

    def bare_round_trip(self, n):
        """What one round trip to this Redis costs a bare client on the server's CPU, one at
        a time: kernel CPU microseconds per round trip, what any client that waits for
        Redis's answer pays on this machine."""
        done = subprocess.run([*pinned("server"), sys.executable, "-c", BARE_ROUND_TRIP, str(self.port), str(n)],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise BenchError("the bare Redis client failed:\n" + done.stderr[-2000:])
        return float(done.stdout)

    def command(self, *args):
        data = b"*%d\r\n" % len(args)
        for a in args:
            a = a.encode() if isinstance(a, str) else a
            data += b"$%d\r\n%s\r\n" % (len(a), a)
        self.sock.sendall(data)
        return self._reply()

    def _fill(self, want):
        while len(self.buf) < want:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise BenchError("redis closed the connection")
            self.buf += chunk

    def _reply(self):
        while b"\r\n" not in self.buf:
            self._fill(len(self.buf) + 1)
        line, self.buf = self.buf.split(b"\r\n", 1)
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise BenchError("redis: " + rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            self._fill(n + 2)
            value, self.buf = self.buf[:n], self.buf[n + 2:]
            return value.decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise BenchError(f"redis: unexpected reply {line[:80]!r}")

    def info(self, section):
        fields = {}
        for line in self.command("INFO", section).splitlines():
            key, sep, value = line.partition(":")
            if sep:
                fields[key] = value.strip()
        return fields

    def commands_processed(self):
        """Commands Redis has run so far, not counting this INFO."""
        return int(self.info("stats")["total_commands_processed"])

    def command_calls(self):
        """{command: calls so far} from INFO commandstats."""
        calls = {}
        for key, value in self.info("commandstats").items():
            if key.startswith("cmdstat_"):
                fields = dict(kv.split("=", 1) for kv in value.split(",") if "=" in kv)
                calls[key[len("cmdstat_"):]] = int(fields.get("calls", 0))
        return calls

    def cpu_seconds(self):
        return task_cpu_seconds(self.proc.pid)

    def stop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def part_redis(args, work, pid_file):
    bin_dir = args.redis_bin
    if not os.access(os.path.join(bin_dir, "redis-server"), os.X_OK):
        raise BenchError(f"part 5 needs redis-server in {bin_dir} (scripts/redis.sh unpacks Debian's into "
                         f".deps/redis/bin; or --redis-bin DIR)")
    per_round = args.redis_users
    turn_size = args.chunk
    cg = args.callgrind
    # User 0 of each path: the sanity check; then warm-up, rounds, latency, callgrind.
    per_path = (1 + args.warmup + args.redis_rounds * per_round + args.redis_latency_warmup + args.redis_latency
                + (CALLGRIND_WARMUP + cg if cg else 0))
    say(f"\n== Part 5: the Redis state store beside the local journal and rlm_totp, {per_round} logins "
        f"(distinct users) per path per round, {args.redis_rounds} rounds; then {args.redis_latency} "
        f"sequential logins per path" + (f"; then {cg} per path under callgrind" if cg else ""))
    say(f"   paths: totp (rlm_totp), mfa journal (rlm_mfa otp, state_store = journal, fsync = no), mfa redis "
        f"(the same with state_store = redis); turns of {turn_size} (radclient -p {args.parallel}), paths "
        f"interleaved in rotated order; {per_path} users per path")

    rng = random.Random(5005)
    keys = {p: [rng.randbytes(20) for _ in range(per_path)] for p in ST_PATHS}

    def name(path, i):
        return f"{ST_PREFIX[path]}{i:06d}"

    def password(path, i, step):
        return hotp(keys[path][i], step)

    def write_users(label, indices):
        """The users file text and the token file (for both rlm_mfa instances) of these users."""
        lines = []
        for i in indices:
            lines.append(f'{name("totp", i)}\tAuth-Type := totp, TOTP-Secret := "{b32(keys["totp"][i])}"\n')
            lines.append(f'{name("journal", i)}\tAuth-Type := mfa\n')
            lines.append(f'{name("redis", i)}\tAuth-Type := mfa_redis\n')
        store = {"users": {name(p, i): {"tokens": [{
            "serial": f"{ST_PREFIX[p].upper()}-{i:06d}", "type": "totp", "secret": b32(keys[p][i]),
            "algorithm": "SHA1", "digits": 6, "period": STEP}]} for p in ("journal", "redis") for i in indices}}
        tokens_path = os.path.join(work, f"tokens-{label}.json")
        write_file(tokens_path, json.dumps(store), 0o640)
        return "".join(lines), tokens_path

    def make_server(label, redis, users_text, tokens_path):
        mods = {"files": MOD_FILES, "totp": MOD_TOTP}
        for inst, store in (("mfa", "journal"), ("mfa_redis", "redis")):
            section = MOD_REDIS_SECTION.replace("@PORT@", str(redis.port)) if store == "redis" else ""
            mods[inst] = (MOD_MFA_STORE.replace("@NAME@", inst).replace("@STORE@", store)
                          .replace("@REDIS@", section))
        server = Server(work, label, args.module_dir, SITE_STORES, mods, users_text, tokens_path, pid_file)
        os.makedirs(os.path.join(server.dir, "mods-config/mfa_redis"), exist_ok=True)
        os.makedirs(os.path.join(server.dir, "db/mfa_redis"), exist_ok=True)
        os.link(os.path.join(server.dir, "mods-config/mfa/tokens.json"),
                os.path.join(server.dir, "mods-config/mfa_redis/tokens.json"))
        return server

    def fresh_step(margin):
        """The current step, once at least `margin` seconds are left in it (rlm_totp
        accepts the current step only)."""
        left = STEP - time.time() % STEP
        if left < margin:
            time.sleep(left + 0.05)
        return step_now()

    main_count = 1 + args.warmup + args.redis_rounds * per_round + args.redis_latency_warmup + args.redis_latency
    users_text, tokens_path = write_users("redis", range(main_count))
    redis = RedisProcess(bin_dir, work, pid_file)
    say(f"   redis-server {redis.version} on 127.0.0.1:{redis.port} (pid {redis.proc.pid}, {bin_dir}; "
        f"no persistence: save \"\", appendonly no)")
    server = None
    try:
        server = make_server("stores", redis, users_text, tokens_path)
        started = server.start()
        say(f"   server ready on 127.0.0.1:{server.port} after {started:.2f} s (configuration in {server.dir})")
        pid = server.proc.pid
        stat_cpu0, task_cpu0 = server.cpu_seconds(), task_cpu_seconds(pid)

        # Sanity: on user 0 of each path a wrong code is rejected, then the right one
        # accepted, and the Redis path really keeps its state in Redis (and only it).
        client = RadiusClient(server.port)
        try:
            step = fresh_step(5)
            for path in ST_PATHS:
                good = password(path, 0, step)
                near = {password(path, 0, s) for s in (step - 1, step, step + 1)}
                bad = next(c for c in (f"{(int(good) + d) % 10 ** 6:06d}" for d in range(1, 10)) if c not in near)
                for code, want in ((bad, 3), (good, 2)):
                    got, _ = client.send(*client.packet(name(path, 0), code))
                    if got != want:
                        raise BenchError(f"part 5 sanity check, {ST_LABEL[path]}: code {got}, expected {want}; "
                                         f"server log:\n" + tail(server.log, 30))
        except socket.timeout:
            raise BenchError("part 5 sanity check: no answer in 10 s; server log:\n" + tail(server.log, 30))
        finally:
            client.close()
        redis_keys = redis.command("KEYS", "bench:*")
        if f"bench:tokens:{name('redis', 0)}" not in redis_keys or any(ST_PREFIX["journal"] + "0" in k
                                                                        for k in redis_keys):
            raise BenchError(f"part 5 sanity check: unexpected keys in Redis: {redis_keys}")
        say(f"   sanity: a wrong code is rejected and the right one accepted on each path; Redis holds "
            f"{', '.join(sorted(redis_keys))}")

        longest = [0.3]
        next_user = {p: 1 for p in ST_PATHS}

        def take(path, count):
            first = next_user[path]
            next_user[path] += count
            return range(first, first + count)

        def turn(path, count):
            idx = take(path, count)
            step = fresh_step(max(1.0, 3 * longest[0] + 0.3))
            packet_file = os.path.join(work, f"packets-st-{path}.txt")
            write_file(packet_file, packets([name(path, i) for i in idx], [password(path, i, step) for i in idx]))
            cmd0 = redis.commands_processed()
            sys0, rsys0 = stat_cpu_split(pid)[1], stat_cpu_split(redis.proc.pid)[1]
            cpu0, rcpu0 = task_cpu_seconds(pid), redis.cpu_seconds()
            seconds, acc, rej, lost, client_cpu = radclient(server.port, [packet_file], args.parallel, 1,
                                                            args.batch_timeout)
            server_cpu, redis_cpu = task_cpu_seconds(pid) - cpu0, redis.cpu_seconds() - rcpu0
            server_sys = stat_cpu_split(pid)[1] - sys0
            redis_sys = stat_cpu_split(redis.proc.pid)[1] - rsys0
            commands = redis.commands_processed() - cmd0 - 1  # less our own first INFO
            longest[0] = max(longest[0], seconds)
            if acc != count or rej or lost:
                raise BenchError(f"{ST_LABEL[path]}: {acc} accepted, {rej} rejected, {lost} lost of {count} "
                                 f"(every login must be accepted); server log:\n" + tail(server.log, 30))
            return [seconds, server_cpu, client_cpu, redis_cpu, commands, server_sys, redis_sys]

        def interleaved(count, rotation):
            totals = {p: [0.0] * 7 for p in ST_PATHS}
            done = k = 0
            while done < count:
                n = min(turn_size, count - done)
                shift = (rotation + k) % 3
                for path in ST_PATHS[shift:] + ST_PATHS[:shift]:
                    totals[path] = [a + b for a, b in zip(totals[path], turn(path, n))]
                if server.proc.poll() is not None or redis.proc.poll() is not None:
                    raise BenchError("the server or Redis died:\n" + tail(server.log) + tail(redis.log))
                done += n
                k += 1
            return {p: {"rps": count / t[0], "server_us": 1e6 * t[1] / count, "client_us": 1e6 * t[2] / count,
                        "redis_us": 1e6 * t[3] / count, "commands": t[4] / count,
                        "server_sys": t[5] / t[1] if t[1] else 0.0, "redis_sys": t[6] / t[3] if t[3] else 0.0}
                    for p, t in totals.items()}

        if args.warmup:
            interleaved(args.warmup, 0)
            say(f"   warm-up: {args.warmup} logins per path, all accepted")
        results = {p: [] for p in ST_PATHS}
        stats0 = redis.command_calls()
        conns0 = int(redis.info("stats")["total_connections_received"])
        for r in range(args.redis_rounds):
            res = interleaved(per_round, r)
            for path in ST_PATHS:
                results[path].append(res[path])
            say(f"   round {r + 1}: " + "; ".join(
                f"{ST_LABEL[p]} {res[p]['rps']:6.0f} req/s, server CPU {res[p]['server_us']:.1f} us"
                + (f" + Redis {res[p]['redis_us']:.1f} us" if p == "redis" else "") for p in ST_PATHS))
        # Only the Redis path talks to Redis (besides this script's INFO).
        stats = redis.command_calls()
        new_conns = int(redis.info("stats")["total_connections_received"]) - conns0
        by_command = {c: (n - stats0.get(c, 0)) / (args.redis_rounds * per_round) for c, n in stats.items()
                      if c not in ("info", "keys", "dbsize", "ping") and n > stats0.get(c, 0)}

        # Latency: one login at a time, the paths taking turns login by login.
        client = RadiusClient(server.port)
        latency = {p: [] for p in ST_PATHS}
        gc.disable()  # no collector pause inside a timed request
        try:
            for i in range(args.redis_latency_warmup + args.redis_latency):
                shift = i % 3
                for path in ST_PATHS[shift:] + ST_PATHS[:shift]:
                    (u,) = take(path, 1)
                    packet, authenticator = client.packet(name(path, u), password(path, u, fresh_step(0.5)))
                    code, seconds = client.send(packet, authenticator)
                    if code != 2:
                        raise BenchError(f"{ST_LABEL[path]}: a sequential login got code {code}, not "
                                         f"Access-Accept; server log:\n" + tail(server.log, 30))
                    if i >= args.redis_latency_warmup:
                        latency[path].append(seconds)
        except socket.timeout:
            raise BenchError("a sequential login got no answer in 10 s; server log:\n" + tail(server.log, 30))
        finally:
            gc.enable()
            client.close()
        stat_cpu, task_cpu = server.cpu_seconds() - stat_cpu0, task_cpu_seconds(pid) - task_cpu0
        rss = server.status_kib("VmRSS")
        redis_mem = redis.info("memory").get("used_memory_human", "?")
        redis_keys = redis.command("DBSIZE")
        server.stop()

        cg_result, cg_skipped = None, ""
        if cg:
            # The measures above stand on their own: a callgrind run that fails is reported, not fatal.
            try:
                cg_result = callgrind_stores(args, work, redis, make_server, write_users, name, password,
                                             fresh_step, range(main_count, per_path))
                if cg_result is None:
                    cg_skipped = "valgrind or callgrind_control is missing"
            except BenchError as e:
                cg_skipped = f"it failed: {e}"
    finally:
        if server is not None:
            server.stop()
        redis.stop()
    errors = error_lines(server.log)

    def med(path, key):
        return statistics.median(x[key] for x in results[path])

    say("")
    rounds = {p: " ".join(f"{x['rps']:.0f}" for x in results[p]) for p in ST_PATHS}
    width = max(18, *(len(x) for x in rounds.values()))
    say(f"   {'path':12} {'median req/s':>12}  {'all rounds (req/s)':<{width}} {'server CPU':>10} {'(system)':>8}"
        f" {'Redis CPU':>10} {'(system)':>8} {'radclient':>10} {'Redis commands':>14}")
    say(f"   {'':12} {'':>12}  {'':<{width}} {'us/login':>10} {'':>8} {'us/login':>10} {'':>8} {'us/login':>10}"
        f" {'per login':>14}")
    for path in ST_PATHS:
        redis_sys = f"{100 * med(path, 'redis_sys'):7.0f}%" if path == "redis" else ""
        say(f"   {ST_LABEL[path]:12} {med(path, 'rps'):12.0f}  {rounds[path]:<{width}} {med(path, 'server_us'):10.1f} "
            f"{100 * med(path, 'server_sys'):7.0f}% {med(path, 'redis_us'):10.1f} {redis_sys:>8} "
            f"{med(path, 'client_us'):10.1f} {med(path, 'commands'):14.2f}")
    say("   ((system) = the share of that CPU time spent in the kernel, from /proc/PID/stat's ticks: on loopback\n"
        "   the kernel time of a send includes the TCP receive work for the other end)")
    say(f"   (server CPU from /proc/PID/task/*/schedstat; over the whole part {task_cpu:.2f} s, /proc/PID/stat "
        f"says {stat_cpu:.2f} s. Server VmRSS at the end {rss / 1024:.1f} MiB; Redis used_memory {redis_mem} "
        f"for {redis_keys} keys; {len(errors)} error lines in the server log"
        + (f", e.g. {errors[0].split(': Error: ', 1)[1].strip()!r})" if errors else ")"))
    say(f"   Redis commands per login on the Redis path (INFO commandstats; a Lua script's own calls count too): "
        + ", ".join(f"{c.upper()} {n:.2f}" for c, n in sorted(by_command.items(), key=lambda x: (-x[1], x[0])))
        + f"; {new_conns} new connections to Redis during the rounds")
    say("")
    checks = []
    # The paths of a round ran interleaved, so the difference within a round is the least noisy figure:
    # the target is judged on the median of those.
    def added(key):
        """Per round: the Redis path's figure minus the journal path's, per login."""
        def value(x):
            return {"all": x["server_us"], "user": x["server_us"] * (1 - x["server_sys"]),
                    "sys": x["server_us"] * x["server_sys"]}[key]
        return [value(r) - value(j) for r, j in zip(results["redis"], results["journal"])]

    paired = added("all")
    added_cpu = statistics.median(paired)
    ok = added_cpu <= args.target_redis_cpu
    checks.append(ok)
    say(f"   server CPU added by Redis = {added_cpu:+6.1f} us/login (median of the rounds' differences; target <= "
        f"{args.target_redis_cpu:g} us)  {'PASS' if ok else 'MISS'}   [round by round: "
        f"{' '.join(f'{x:+.1f}' for x in paired)}; medians: redis {med('redis', 'server_us'):.1f} - journal "
        f"{med('journal', 'server_us'):.1f}]")
    say(f"   of which user space      = {statistics.median(added('user')):+6.1f} us/login, kernel "
        f"{statistics.median(added('sys')):+.1f} us/login (medians of the rounds; the system share is from "
        f"/proc/PID/stat's ticks)")
    say(f"   with Redis's own CPU     = {added_cpu + med('redis', 'redis_us'):+6.1f} us/login (Redis "
        f"{med('redis', 'redis_us'):.1f} us/login, apart from the server's; information only)")
    say(f"   server CPU, mfa journal / totp = x{med('journal', 'server_us') / med('totp', 'server_us'):.2f}, "
        f"mfa redis / totp = x{med('redis', 'server_us') / med('totp', 'server_us'):.2f}")

    say("")
    say(f"   Latency, one login at a time ({args.redis_latency} per path after {args.redis_latency_warmup} "
        f"unmeasured, paths taking turns), send to reply in this script:")
    say(f"   {'path':12} {'median us':>10} {'p90 us':>8} {'p99 us':>8} {'vs journal: median':>19} {'p99':>8}")
    base = {"median": statistics.median(latency["journal"]), "p99": percentile(latency["journal"], 99)}
    for path in ST_PATHS:
        values = latency[path]
        m, p90, p99 = statistics.median(values), percentile(values, 90), percentile(values, 99)
        added = "" if path == "journal" else f"{1e6 * (m - base['median']):+19.0f} {1e6 * (p99 - base['p99']):+8.0f}"
        say(f"   {ST_LABEL[path]:12} {1e6 * m:10.0f} {1e6 * p90:8.0f} {1e6 * p99:8.0f} {added}")
    added_p99 = percentile(latency["redis"], 99) - base["p99"]
    ok = added_p99 <= args.target_redis_p99 / 1000
    checks.append(ok)
    say(f"   p99 latency added by Redis = {1e6 * added_p99:+.0f} us (target <= {1000 * args.target_redis_p99:g} us)"
        f"  {'PASS' if ok else 'MISS'}   (median added "
        f"{1e6 * (statistics.median(latency['redis']) - base['median']):+.0f} us)")

    if cg_result is not None:
        say("")
        say(f"   Instructions per accepted login under callgrind ({cg} sequential logins per path after "
            f"{CALLGRIND_WARMUP} unmeasured; the whole FreeRADIUS process, user space only: not the kernel, "
            f"not Redis):")
        for path in ST_PATHS:
            say(f"   {ST_LABEL[path]:12} {cg_result['paths'][path]:12,.0f} instructions/login")
        say(f"   mfa redis - mfa journal = {cg_result['paths']['redis'] - cg_result['paths']['journal']:+,.0f} "
            f"instructions/login (idle process: {cg_result['idle_per_s']:,.0f} instructions/s, subtracted; "
            f"{cg_result['seconds']:.0f} s under valgrind)")
    elif cg:
        say(f"\n   callgrind: no count ({cg_skipped})")
    say(f"   (load average at the end of part 5: {' '.join(f'{x:.2f}' for x in os.getloadavg())})")
    return checks


class Callgrind:
    """A server to be run under valgrind's callgrind with instrumentation off until
    `control("--instr=on")`; `control("--zero")` zeroes the counters and `dump()`
    returns the instructions since then (callgrind_control)."""

    def __init__(self, server):
        self.server = server
        self.out_dir = os.path.join(server.dir, "callgrind")
        os.makedirs(self.out_dir, exist_ok=True)
        server.command_prefix = ("valgrind", "--tool=callgrind", "--instr-atstart=no",
                                 f"--callgrind-out-file={self.out_dir}/callgrind.out",
                                 f"--log-file={self.out_dir}/valgrind.log")

    def control(self, *opts):
        done = subprocess.run(["callgrind_control", *opts, str(self.server.proc.pid)], capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0 or "OK." not in done.stdout:  # it exits 0 when it finds no such process
            raise BenchError(f"callgrind_control {' '.join(opts)} failed: {(done.stdout + done.stderr).strip()}")

    def dump(self):
        """Dumps the counters; returns the instructions since the last zeroing."""
        before = set(os.listdir(self.out_dir))
        self.control("--dump")
        t0 = time.monotonic()
        while True:
            new = sorted(set(os.listdir(self.out_dir)) - before - {"valgrind.log"})
            if new:
                time.sleep(0.2)  # let the writer finish
                with open(os.path.join(self.out_dir, new[0]), errors="replace") as f:
                    for line in f:
                        if line.startswith(("summary:", "totals:")):
                            return int(line.split()[1])
            if time.monotonic() - t0 > 60:
                raise BenchError(f"callgrind wrote no dump in 60 s; see {self.out_dir}")
            time.sleep(0.1)


def callgrind_stores(args, work, redis, make_server, write_users, name, password, fresh_step, indices):
    """Instructions per accepted login on each path, counted by valgrind's callgrind
    in a second server (the same configuration, only its own users): instrumentation
    is switched on after start-up, then each path's logins run between a zeroing
    and a dump of the counters (callgrind_control)."""
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        return None
    t_start = time.monotonic()
    indices = list(indices)
    users_text, tokens_path = write_users("callgrind", indices)
    server = make_server("stores-callgrind", redis, users_text, tokens_path)
    cg = Callgrind(server)
    control, dump = cg.control, cg.dump

    client = None
    try:
        server.start(timeout=600)
        control("--instr=on")
        client = RadiusClient(server.port)
        client.sock.settimeout(60)
        def logins(path, count):
            for _ in range(count):
                u = next(pos_by_path[path])
                code, _ = client.send(*client.packet(name(path, u), password(path, u, fresh_step(2))))
                if code != 2:
                    raise BenchError(f"callgrind, {ST_LABEL[path]}: code {code}, not Access-Accept; "
                                     f"server log:\n" + tail(server.log, 30))

        pos_by_path = {p: iter(indices) for p in ST_PATHS}
        for path in ST_PATHS:
            logins(path, CALLGRIND_WARMUP)
        control("--zero")
        t0 = time.monotonic()
        time.sleep(2)
        idle = dump()
        idle_per_s = idle / (time.monotonic() - t0)
        per_login = {}
        for path in ST_PATHS:
            control("--zero")
            t0 = time.monotonic()
            logins(path, args.callgrind)
            total = dump()
            per_login[path] = (total - idle_per_s * (time.monotonic() - t0)) / args.callgrind
    except socket.timeout:
        raise BenchError("callgrind: a login got no answer in 60 s; server log:\n" + tail(server.log, 30))
    finally:
        if client is not None:
            client.close()
        server.stop(grace=60)
    return {"paths": per_login, "idle_per_s": idle_per_s, "seconds": time.monotonic() - t_start}


# ---------------------------------------------------------------- main

RESULTS = []  # open results file, if any


def say(text=""):
    print(text, flush=True)
    for f in RESULTS:
        f.write(text + "\n")
        f.flush()


def describe_machine(module):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    version = subprocess.run(["freeradius", "-v"], capture_output=True, text=True).stdout.splitlines()
    with open(module, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    st = os.stat(module)
    say(f"module:  {module} (sha256 {digest}..., {st.st_size} bytes, "
        f"built {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(st.st_mtime))})")
    say(f"server:  {version[0] if version else 'freeradius ?'}")
    say(f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main():
    ap = argparse.ArgumentParser(description="rlm_mfa benchmark (see bench/README.md)")
    ap.add_argument("--module-dir", required=True, help="directory holding rlm_mfa.so")
    ap.add_argument("--work", required=True, help="scratch directory (emptied by run.sh)")
    ap.add_argument("--users", type=int, default=12000, help="requests (distinct users) per path per round")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the three paths")
    ap.add_argument("--warmup", type=int, default=2000, help="unmeasured requests per path first")
    ap.add_argument("--parallel", type=int, default=64, help="radclient -p (per radclient)")
    ap.add_argument("--clients", type=int, default=1, help="radclient processes running at once")
    ap.add_argument("--chunk", type=int, default=2000, help="packets per radclient input file")
    ap.add_argument("--batch-timeout", type=int, default=120, help="seconds allowed per batch")
    ap.add_argument("--store-users", type=int, default=100000, help="users in the big token store")
    ap.add_argument("--store-runs", type=int, default=3, help="start-ups per store size")
    ap.add_argument("--results", help="also write the report to this file")
    ap.add_argument("--push-pending", type=int, default=200, help="push logins sent at once in part 3")
    ap.add_argument("--push-totp", type=int, default=10000, help="TOTP logins per measure in part 3")
    ap.add_argument("--push-rounds", type=int, default=3, help="rounds of part 3")
    ap.add_argument("--push-settle", type=float, default=1.0,
                    help="seconds between the last push created and the measure in part 3")
    ap.add_argument("--fake-privacyidea", help="the fake privacyIDEA program, for part 4")
    ap.add_argument("--pi-users", type=int, default=10000, help="requests per path per round in part 4")
    ap.add_argument("--pi-rounds", type=int, default=5, help="rounds of part 4")
    ap.add_argument("--pi-latency", type=int, default=3000, help="sequential requests per path in part 4")
    ap.add_argument("--pi-latency-warmup", type=int, default=200,
                    help="unmeasured sequential requests per path first in part 4")
    ap.add_argument("--redis-bin", default=os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                          ".deps", "redis", "bin"),
                    help="directory of redis-server, for part 5 (default: .deps/redis/bin)")
    ap.add_argument("--redis-users", type=int, default=6000, help="logins per path per round in part 5")
    ap.add_argument("--redis-rounds", type=int, default=5, help="rounds of part 5")
    ap.add_argument("--redis-latency", type=int, default=2000, help="sequential logins per path in part 5")
    ap.add_argument("--redis-latency-warmup", type=int, default=200,
                    help="unmeasured sequential logins per path first in part 5")
    ap.add_argument("--callgrind", type=int, default=200,
                    help="logins per path counted under valgrind's callgrind in part 5; 0: none")
    ap.add_argument("--cost-logins", type=int, default=300,
                    help="logins per path counted under callgrind in part 6; 0: none")
    ap.add_argument("--cost-users", type=int, default=4000, help="logins per path per round of part 6's CPU measure")
    ap.add_argument("--cost-rounds", type=int, default=11, help="rounds of part 6's CPU measure")
    ap.add_argument("--cost-together", type=int, default=11,
                    help="rounds of part 6's CPU measure with the otp and totp servers served at the same time "
                         "(0: none)")
    ap.add_argument("--cost-strace", type=int, default=1000,
                    help="logins per path counted by strace -c in part 6; 0: none")
    ap.add_argument("--cost-bare-trips", type=int, default=2000,
                    help="round trips of a bare Redis client per round of part 6 (the floor); 0: none")
    ap.add_argument("--cost-memory", type=int, default=100000,
                    help="users logging in once each for part 6's memory measure; 0: none")
    ap.add_argument("--redis-beside-server", action="store_true",
                    help="parts 5 and 6: pin redis-server to the server's CPU, not the load's")
    ap.add_argument("--no-pin", action="store_true",
                    help="parts 5 and 6: pin nothing (by default the server runs on one CPU, the load on another)")
    ap.add_argument("--parts", default="1,2,3,4,5,6", help="parts to run, e.g. 3 or 1,4 (default: all)")
    ap.add_argument("--skip-throughput", action="store_true", help="leave out part 1")
    ap.add_argument("--skip-store", action="store_true", help="leave out part 2")
    ap.add_argument("--target-pap", type=float, default=0.95)
    ap.add_argument("--target-totp", type=float, default=1.0)
    ap.add_argument("--target-start", type=float, default=1.0, help="seconds")
    ap.add_argument("--target-rss", type=float, default=64.0, help="MiB")
    ap.add_argument("--target-push", type=float, default=0.9, help="TOTP req/s with pushes pending / without")
    ap.add_argument("--target-redis-cpu", type=float, default=20.0,
                    help="server CPU Redis may add per login, microseconds")
    ap.add_argument("--target-redis-p99", type=float, default=1.0, help="p99 latency Redis may add, milliseconds")
    args = ap.parse_args()
    if args.users < 1 or args.rounds < 1 or args.store_users < 2 or args.store_runs < 1:
        ap.error("--users, --rounds, --store-runs must be >= 1 and --store-users >= 2")
    if (args.push_pending <= PUSH_MAX_WAITING or args.push_pending > 1000 or args.push_totp < 1
            or args.push_rounds < 1 or not 0 <= args.push_settle <= 5):
        ap.error(f"--push-pending must be {PUSH_MAX_WAITING + 1} to 1000, --push-totp and --push-rounds >= 1, "
                 f"--push-settle 0 to 5")
    try:
        parts = {int(x) for x in args.parts.replace(",", " ").split()}
    except ValueError:
        parts = set()
    if not parts or not parts <= {1, 2, 3, 4, 5, 6}:
        ap.error("--parts takes part numbers 1 to 6, e.g. --parts 3 or --parts 1,4")
    if (args.cost_logins < 0 or args.cost_users < 1 or args.cost_rounds < 1 or args.cost_strace < 0
            or args.cost_memory < 0 or args.cost_bare_trips < 0 or args.cost_together < 0):
        ap.error("--cost-users and --cost-rounds must be >= 1, --cost-logins, --cost-strace, --cost-bare-trips, "
                 "--cost-together and "
                 "--cost-memory >= 0")
    if (args.redis_users < 1 or args.redis_rounds < 1 or args.redis_latency < 1 or args.redis_latency_warmup < 0
            or args.callgrind < 0):
        ap.error("--redis-users, --redis-rounds, --redis-latency must be >= 1, --redis-latency-warmup and "
                 "--callgrind >= 0")
    if args.pi_users < 1 or args.pi_rounds < 1 or args.pi_latency < 1 or args.pi_latency_warmup < 0:
        ap.error("--pi-users, --pi-rounds, --pi-latency must be >= 1 and --pi-latency-warmup >= 0")
    if 4 in parts and not args.fake_privacyidea:
        ap.error("part 4 needs --fake-privacyidea FILE (run.sh builds it)")
    if args.skip_throughput:
        parts.discard(1)
    if args.skip_store:
        parts.discard(2)
    args.module_dir = os.path.abspath(args.module_dir)
    module = os.path.join(args.module_dir, "rlm_mfa.so")
    if not os.path.isfile(module):
        ap.error(f"no rlm_mfa.so in {args.module_dir}")
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    pid_file = os.path.join(work, "pids")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    if args.results:
        RESULTS.append(open(args.results, "w"))
    self_test()
    started = time.monotonic()
    describe_machine(module)
    checks = []
    try:
        if 1 in parts:
            checks += part_throughput(args, work, pid_file)
        if 2 in parts:
            checks += part_store(args, work, pid_file)
        if 3 in parts:
            checks += part_push(args, work, pid_file)
        if 4 in parts:
            checks += part_privacyidea(args, work, pid_file)
        if 5 in parts:
            with Pinning(not args.no_pin, args.redis_beside_server) as pins:
                say(f"== Part 5 runs with {pins.describe()}")
                checks += part_redis(args, work, pid_file)
        if 6 in parts:
            import cost  # bench/cost.py, beside this file
            with Pinning(not args.no_pin, args.redis_beside_server) as pins:
                say(f"== Part 6 runs with {pins.describe()}")
                checks += cost.part_cost(args, work, pid_file, sys.modules[__name__])
    except BenchError as e:
        say(f"\nFAILED: {e}")
        return 1
    except KeyboardInterrupt:
        say("\ninterrupted")
        return 130
    finally:
        Server.stop_all()
    say(f"\n== {sum(checks)} of {len(checks)} targets met; total time {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
