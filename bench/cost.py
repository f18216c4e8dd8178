# rlm_mfa benchmark, part 6: the server's cost of one accepted login, path by path.
# Imported by bench/bench.py (which passes itself in as `b`); see bench/README.md.
#
# Each path runs in a FreeRADIUS of its own, configured for that path alone, and
# every login is a fresh user answered with an Access-Accept. Three measures:
#   instructions  a fresh server per path under valgrind's callgrind, counted
#                 over N sequential logins after a warm-up, less the idle rate;
#                 load on the machine does not change this count;
#   CPU           a plain server per path, the paths' radclient turns interleaved
#                 in rounds, CPU time from /proc/PID/task/*/schedstat; then rounds
#                 in which the otp and totp servers serve their logins at the same
#                 time on the server's CPU, so that whatever slows the machine in a
#                 round (its neighbours, on a virtual machine) slows both alike;
#   system calls  the same plain servers, `strace -c -f` attached over N logins,
#                 less what the same attach counts while the server is idle;
#   memory        a server of the otp path with 100,000 users (--cost-memory): its
#                 VmRSS after every user logged in once, less before the first login.
#
# SPDX-License-Identifier: GPL-2.0-or-later

import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time

PATHS = ("accept", "pap", "totp", "otp", "pwotp", "redis")
LABEL = {"accept": "files+Accept", "pap": "files+pap", "totp": "files+rlm_totp", "otp": "mfa otp",
         "pwotp": "mfa password+otp", "redis": "mfa otp, Redis"}
PREFIX = {"accept": "a", "pap": "p", "totp": "t", "otp": "o", "pwotp": "w", "redis": "r"}
MFA_PATHS = ("otp", "pwotp", "redis")
CG_WARMUP = 20  # logins per callgrind server before the counted ones
PASSWORD = "pw1234"  # every PAP and password+otp user's password

# authorize / authenticate / post-auth of each path's virtual server. The mfa paths are
# the shipped site's (freeradius-conf/sites-available/mfa) without its EAP lines; rlm_totp
# is used as its mods-available/totp says (TOTP-Password copied from User-Password).
SECTIONS = {
    "accept": ("files", "", ""),
    "pap": ("files", "Auth-Type PAP {\n\t\tpap\n\t}", ""),
    "totp": ("files\n\tupdate request {\n\t\t&TOTP-Password := &User-Password\n\t}",
             "Auth-Type totp {\n\t\ttotp\n\t}", ""),
    "otp": ("mfa\n\tfiles", "Auth-Type mfa {\n\t\tmfa\n\t}", "mfa"),
    "pwotp": ("mfa\n\tfiles\n\tpap", "Auth-Type mfa {\n\t\tif (!&State) {\n\t\t\tpap\n\t\t}\n\t\tmfa\n\t}", "mfa"),
    "redis": ("mfa\n\tfiles", "Auth-Type mfa {\n\t\tmfa\n\t}", "mfa"),
}

SITE = """\
server bench {
listen {
	type = auth
	ipaddr = 127.0.0.1
	port = @PORT@
}
authorize {
	@AUTHORIZE@
}
authenticate {
	@AUTHENTICATE@
}
post-auth {
	@POST_AUTH@
}
}
"""

MOD_MFA = """\
mfa {{
	mode = {mode}
	tokens = ${{modconfdir}}/mfa/tokens.json
	state = ${{db_dir}}/mfa/state.jsonl
	state_key = ${{modconfdir}}/mfa/state.key
	fsync = no
	require_token = yes
	totp_window = 1
	state_store = {store}
{redis}}}
"""
MOD_REDIS = '\tredis {{\n\t\tserver = "127.0.0.1:{port}"\n\t\tprefix = "cost"\n\t}}\n'


def site(path):
    authorize, authenticate, post_auth = SECTIONS[path]
    text = (SITE.replace("@AUTHORIZE@", authorize).replace("@AUTHENTICATE@", authenticate or "# nothing")
            .replace("@POST_AUTH@", post_auth or "# nothing"))
    # bench.Server fills in the port with str.format: every other brace is doubled.
    return text.replace("{", "{{").replace("}", "}}").replace("@PORT@", "{port}")


def parse_strace(path):
    """{syscall: calls} from an `strace -c` summary."""
    calls = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                try:
                    calls[fields[-1]] = calls.get(fields[-1], 0) + int(fields[3])
                except ValueError:
                    pass
    return calls


def part_cost(args, work, pid_file, b):
    n_cg, n_cpu, rounds, n_strace = args.cost_logins, args.cost_users, args.cost_rounds, args.cost_strace
    chunk = min(args.chunk, n_cpu)
    have_cg = bool(shutil.which("valgrind") and shutil.which("callgrind_control")) and n_cg > 0
    have_strace = bool(shutil.which("strace")) and n_strace > 0
    n_together = args.cost_together
    plain_count = 1 + args.warmup + (rounds + n_together) * n_cpu + n_strace
    per_path = plain_count + (CG_WARMUP + n_cg if have_cg else 0)
    b.say(f"\n== Part 6: the server's cost of one accepted login, a FreeRADIUS of its own per path "
          f"({', '.join(LABEL[p] for p in PATHS)})")
    b.say(f"   instructions: {n_cg} sequential logins per path under callgrind"
          + ("" if have_cg else " (valgrind or callgrind_control missing: left out)")
          + f"; CPU: {rounds} rounds of {n_cpu} logins per path (radclient -p {args.parallel}, turns of {chunk}, "
          f"interleaved), then {n_together} rounds of {n_cpu} logins each for otp and totp at once; system calls: strace -c -f over {n_strace} logins"
          + ("" if have_strace else " (strace missing: left out)"))

    def key(path, i):
        # The TOTP secret of user i of a path: 20 bytes, the same from run to run.
        return hashlib.sha1(f"cost-{path}-{i}".encode()).digest()

    def name(path, i):
        return f"{PREFIX[path]}{i:06d}"

    def password(path, i, step):
        if path in ("accept", "pap"):
            return PASSWORD
        code = b.hotp(key(path, i), step)
        return f"{PASSWORD},{code}" if path == "pwotp" else code

    def files_entry(path, i):
        return {"accept": "Auth-Type := Accept", "pap": f'Auth-Type := PAP, Cleartext-Password := "{PASSWORD}"',
                "totp": f'Auth-Type := totp, TOTP-Secret := "{b.b32(key("totp", i)) if path == "totp" else ""}"',
                "otp": None, "redis": None, "pwotp": f'Cleartext-Password := "{PASSWORD}"'}[path]

    def make_server(path, label, indices, redis):
        entries = ((i, files_entry(path, i)) for i in indices)
        users = "".join(f"{name(path, i)}\t{entry}\n" for i, entry in entries if entry is not None)
        store = {"users": {}}
        if path in MFA_PATHS:
            store["users"] = {name(path, i): {"tokens": [{
                "serial": f"C-{i:06d}", "type": "totp", "secret": b.b32(key(path, i)), "algorithm": "SHA1",
                "digits": 6, "period": b.STEP}]} for i in indices}
        tokens = os.path.join(work, f"tokens-cost-{label}.json")
        b.write_file(tokens, json.dumps(store), 0o640)
        mods = {"files": b.MOD_FILES, "pap": b.MOD_PAP, "totp": b.MOD_TOTP}
        if path in MFA_PATHS:
            mods["mfa"] = MOD_MFA.format(mode="password+otp" if path == "pwotp" else "otp",
                                         store="redis" if path == "redis" else "journal",
                                         redis=MOD_REDIS.format(port=redis.port) if path == "redis" else "")
        return b.Server(work, f"cost-{label}", args.module_dir, site(path), mods, users, tokens, pid_file)

    def fresh_step(margin):
        left = b.STEP - time.time() % b.STEP
        if left < margin:
            time.sleep(left + 0.05)
        return b.step_now()

    def one_login(client, path, i, want=2, code=None):
        got, _ = client.send(*client.packet(name(path, i), code or password(path, i, fresh_step(2))))
        if got != want:
            raise b.BenchError(f"part 6, {LABEL[path]}: reply code {got} for user {name(path, i)}, expected {want}")

    redis = b.RedisProcess(args.redis_bin, work, pid_file) if os.access(
        os.path.join(args.redis_bin, "redis-server"), os.X_OK) else None
    paths = [p for p in PATHS if p != "redis" or redis is not None]
    if redis is None:
        b.say(f"   (no redis-server in {args.redis_bin}: the Redis path is left out)")
    servers = {}
    cpu = {p: [] for p in paths}
    redis_cpu = []
    bare = []  # kernel us per round trip of a bare Redis client, one per round
    together = []  # (otp, totp) us/login, each round's two from the same time
    syscalls, top = {}, {}
    instructions = {}
    try:
        # ---- CPU and system calls: plain servers, all running, turns interleaved.
        for path in paths:
            servers[path] = make_server(path, path, range(plain_count), redis)
            servers[path].start()
        next_user = {p: 1 for p in paths}
        for path in paths:
            client = b.RadiusClient(servers[path].port)
            try:
                if path not in ("accept", "pap"):
                    good = password(path, 0, fresh_step(3))
                    one_login(client, path, 0, 3, good[:-6] + f"{(int(good[-6:]) + 1) % 10 ** 6:06d}")
                one_login(client, path, 0, 2)
            finally:
                client.close()
        b.say("   sanity: on each path a wrong code is rejected and the right one accepted")
        longest = [0.3]

        def turn(path, count):
            first = next_user[path]
            next_user[path] += count
            idx = range(first, first + count)
            step = fresh_step(max(1.0, 3 * longest[0] + 0.3))
            packet_file = os.path.join(work, f"packets-cost-{path}.txt")
            b.write_file(packet_file, b.packets([name(path, i) for i in idx], [password(path, i, step) for i in idx]))
            pid = servers[path].proc.pid
            cpu0 = b.task_cpu_seconds(pid)
            rcpu0 = redis.cpu_seconds() if path == "redis" else 0.0
            seconds, acc, rej, lost, _ = b.radclient(servers[path].port, [packet_file], args.parallel, 1,
                                                     args.batch_timeout)
            used = b.task_cpu_seconds(pid) - cpu0
            rused = redis.cpu_seconds() - rcpu0 if path == "redis" else 0.0
            longest[0] = max(longest[0], seconds)
            if acc != count or rej or lost:
                raise b.BenchError(f"part 6, {LABEL[path]}: {acc} accepted, {rej} rejected, {lost} lost of {count};"
                                   f" server log:\n" + b.tail(servers[path].log, 30))
            return used, rused

        def interleaved(count, rotation):
            totals = {p: [0.0, 0.0] for p in paths}
            done = k = 0
            while done < count:
                n = min(chunk, count - done)
                shift = (rotation + k) % len(paths)
                for path in paths[shift:] + paths[:shift]:
                    totals[path] = [a + x for a, x in zip(totals[path], turn(path, n))]
                done += n
                k += 1
            return totals

        if args.warmup:
            interleaved(args.warmup, 0)
        for r in range(rounds):
            totals = interleaved(n_cpu, r)
            for path in paths:
                cpu[path].append(1e6 * totals[path][0] / n_cpu)
            if redis is not None:
                redis_cpu.append(1e6 * totals["redis"][1] / n_cpu)
            b.say(f"   round {r + 1}: server CPU us/login " + ", ".join(f"{LABEL[p]} {cpu[p][-1]:.1f}" for p in paths))
            if redis is not None and args.cost_bare_trips:
                bare.append(redis.bare_round_trip(args.cost_bare_trips))

        def at_once(pair, count):
            # Each path's turn, at the same time: one radclient each, both servers on
            # the server's CPU; each server's CPU over the window both ran in.
            step = fresh_step(max(1.0, 3 * longest[0] + 0.3))
            files = {}
            for path in pair:
                first = next_user[path]
                next_user[path] += count
                idx = range(first, first + count)
                files[path] = os.path.join(work, f"packets-together-{path}.txt")
                b.write_file(files[path], b.packets([name(path, i) for i in idx],
                                                    [password(path, i, step) for i in idx]))
            pids = {path: servers[path].proc.pid for path in pair}
            cpu0 = {path: b.task_cpu_seconds(pids[path]) for path in pair}
            results, errors = {}, []

            def send(path):
                try:
                    results[path] = b.radclient(servers[path].port, [files[path]], args.parallel, 1,
                                                args.batch_timeout)
                except Exception as e:  # raised again below, in the main thread
                    errors.append(e)

            threads = [threading.Thread(target=send, args=(path,)) for path in pair]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            used = {path: b.task_cpu_seconds(pids[path]) - cpu0[path] for path in pair}
            if errors:
                raise errors[0]
            for path in pair:
                seconds, acc, rej, lost, _ = results[path]
                longest[0] = max(longest[0], seconds)
                if acc != count or rej or lost:
                    raise b.BenchError(f"part 6, {LABEL[path]} (at once): {acc} accepted, {rej} rejected, {lost} lost "
                                       f"of {count}; server log:\n" + b.tail(servers[path].log, 30))
            return used

        for r in range(n_together):
            used = at_once(("otp", "totp"), n_cpu)
            together.append((1e6 * used["otp"] / n_cpu, 1e6 * used["totp"] / n_cpu))
            b.say(f"   at once {r + 1}: server CPU us/login {LABEL['otp']} {together[-1][0]:.1f}, "
                  f"{LABEL['totp']} {together[-1][1]:.1f}")

        if have_strace:
            for path in paths:
                syscalls[path], top[path] = strace_count(b, work, servers[path], lambda p=path: turn(p, n_strace),
                                                         n_strace)
            b.say("   system calls per login: " + ", ".join(f"{LABEL[p]} {syscalls[p]:.2f}" for p in paths))
        for path in paths:
            servers[path].stop()

        # ---- Memory: the otp path's state for --cost-memory users who each log in once.
        memory = None
        if args.cost_memory:
            memory = memory_count(b, args, work, servers, make_server, password, name)

        # ---- Instructions: a fresh server per path under callgrind, one after the other.
        if have_cg:
            for path in paths:
                instructions[path] = callgrind_count(b, args, servers, path, make_server, redis, one_login,
                                                     range(plain_count, per_path), n_cg)
                b.say(f"   {LABEL[path]:17} {instructions[path]:10,.0f} instructions/login")
    finally:
        for server in servers.values():
            server.stop()
        if redis is not None:
            redis.stop()
    return report(b, args, paths, instructions, cpu, redis_cpu, bare, together, syscalls, top, memory)


def memory_count(b, args, work, servers, make_server, password, name):
    """The resident memory (VmRSS) that `--cost-memory` users, each logging in once, add to
    a server of the otp path and to one of the files+rlm_totp path, which keeps nothing
    per user: the difference is what the module's state adds. Each is measured after one
    login (everything loaded and warmed, the users file and token store of all the users
    included) and after the last; FreeRADIUS's cleanup_delay is 0 here.
    Returns {path: MiB added}."""
    n = args.cost_memory
    base = 200000  # user numbers of their own, after every other server's
    added = {}
    for path in ("totp", "otp"):
        server = make_server(path, f"{path}-memory", range(base, base + n), None)
        servers[f"{path}-memory"] = server
        # Requests are freed as soon as they are answered (FreeRADIUS keeps each for
        # cleanup_delay otherwise: tens of thousands at once at these rates, a high water
        # mark of the server's, not state of the module).
        conf = os.path.join(server.dir, "radiusd.conf")
        with open(conf) as f:
            text = f.read()
        b.write_file(conf, text.replace("cleanup_delay = 5", "cleanup_delay = 0"))
        try:
            server.start(timeout=300)
            client = b.RadiusClient(server.port)
            try:
                got, _ = client.send(*client.packet(name(path, base), password(path, base, b.step_now())))
            finally:
                client.close()
            if got != 2:
                raise b.BenchError(f"part 6, memory, {LABEL[path]}: reply code {got} for the first login")
            time.sleep(1)
            before = server.status_kib("VmRSS")
            done, chunk = 1, args.chunk
            while done < n:
                count = min(chunk, n - done)
                idx = range(base + done, base + done + count)
                left = b.STEP - time.time() % b.STEP
                if left < 4:
                    time.sleep(left + 0.05)
                step = b.step_now()
                packet_file = os.path.join(work, "packets-cost-memory.txt")
                b.write_file(packet_file, b.packets([name(path, i) for i in idx],
                                                    [password(path, i, step) for i in idx]))
                _, acc, rej, lost, _ = b.radclient(server.port, [packet_file], args.parallel, 1, args.batch_timeout)
                if acc != count or rej or lost:
                    raise b.BenchError(f"part 6, memory, {LABEL[path]}: {acc} accepted, {rej} rejected, {lost} lost"
                                       f" of {count}; server log:\n" + b.tail(server.log, 30))
                done += count
            time.sleep(1)
            after = server.status_kib("VmRSS")
        finally:
            server.stop()
        added[path] = (after - before) / 1024
        b.say(f"   memory, {LABEL[path]}: {n:,} users who each logged in once: VmRSS "
              f"{before / 1024:.1f} -> {after / 1024:.1f} MiB ({added[path]:+.1f} MiB)")
    b.say(f"   memory the module's state adds for {n:,} users: {added['otp'] - added['totp']:+.1f} MiB "
          f"({(added['otp'] - added['totp']) * 1048576 / n:.0f} bytes per user)")
    return added


def strace_count(b, work, server, send, logins):
    """System calls per login: `strace -c -f` attached to the server's threads over the
    logins `send()` sends, less the idle rate of an attach of 2 s without requests."""
    def attach(label, during):
        out = os.path.join(work, f"strace-{os.path.basename(server.dir)}-{label}.txt")
        proc = subprocess.Popen(["strace", "-c", "-f", "-q", "-o", out, "-p", str(server.proc.pid)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # let it attach to every thread
        t0 = time.monotonic()
        try:
            during()
        finally:
            seconds = time.monotonic() - t0 + 1.0
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
        return parse_strace(out), seconds

    idle, idle_s = attach("idle", lambda: time.sleep(2.0))
    busy, busy_s = attach("logins", send)
    scale = busy_s / idle_s
    per_login = {c: (busy.get(c, 0) - idle.get(c, 0) * scale) / logins for c in set(busy) | set(idle)}
    total = sum(busy.values()) - sum(idle.values()) * scale
    top = sorted(((c, n) for c, n in per_login.items() if n >= 0.05), key=lambda x: -x[1])
    return total / logins, top


def callgrind_count(b, args, servers, path, make_server, redis, one_login, indices, n):
    """Instructions per login of a fresh server under callgrind: instrumentation on after
    start-up, CG_WARMUP logins, an idle measure (2 s), then `n` logins between a zeroing
    and a dump; the idle rate times the logins' seconds is subtracted."""
    server = make_server(path, f"{path}-callgrind", indices, redis)
    servers[f"{path}-callgrind"] = server
    indices = iter(indices)
    cg = b.Callgrind(server)
    control, dump = cg.control, cg.dump

    client = None
    try:
        server.start(timeout=600)
        control("--instr=on")
        client = b.RadiusClient(server.port)
        client.sock.settimeout(60)
        for _ in range(CG_WARMUP):
            one_login(client, path, next(indices))
        control("--zero")
        t0 = time.monotonic()
        time.sleep(2)
        idle_per_s = dump() / (time.monotonic() - t0)
        control("--zero")
        t0 = time.monotonic()
        for _ in range(n):
            one_login(client, path, next(indices))
        total = dump()
        return (total - idle_per_s * (time.monotonic() - t0)) / n
    except socket.timeout:
        raise b.BenchError(f"part 6 callgrind, {LABEL[path]}: no answer in 60 s; server log:\n" + b.tail(server.log))
    finally:
        if client is not None:
            client.close()
        server.stop(grace=60)


def report(b, args, paths, instructions, cpu, redis_cpu, bare, together, syscalls, top, memory):
    med = {p: statistics.median(cpu[p]) for p in paths}
    base = "totp"
    b.say("")
    b.say(f"   {'path':17} {'instructions':>12} {'x totp':>7} {'CPU us':>7} {'x totp':>7} {'syscalls':>9}"
          f"   (per accepted login)")
    for p in paths:
        ins = instructions.get(p)
        b.say(f"   {LABEL[p]:17} {f'{ins:,.0f}' if ins else '-':>12} "
              f"{f'{ins / instructions.get(base, ins):.2f}' if ins else '-':>7} "
              f"{med[p]:7.1f} {med[p] / med['totp']:7.2f} {f'{syscalls[p]:.2f}' if p in syscalls else '-':>9}")
    for p in paths:
        if p in top:
            b.say(f"   {LABEL[p]:17} system calls: " + ", ".join(f"{c} {n:.2f}" for c, n in top[p][:8]))
    if redis_cpu:
        b.say(f"   (Redis's own CPU on the Redis path: {statistics.median(redis_cpu):.1f} us/login, apart)")
    b.say("")
    checks = []

    def check(text, value, limit, unit=""):
        ok = value <= limit
        checks.append(ok)
        b.say(f"   {text:58} {value:10.3f}{unit}  (target <= {limit:g}{unit})  {'PASS' if ok else 'MISS'}")

    if "otp" in instructions and "totp" in instructions:
        check("mfa otp / rlm_totp, instructions", instructions["otp"] / instructions["totp"], 1.0)
    check("mfa otp / rlm_totp, server CPU (median of rounds)", med["otp"] / med["totp"], 1.0)
    paired = [o / t for o, t in zip(cpu["otp"], cpu["totp"])]
    b.say(f"   (round by round: {' '.join(f'{x:.2f}' for x in paired)})")
    if together:
        at_once = [o / t for o, t in together]
        check("mfa otp / rlm_totp, server CPU, both at once (median of rounds)", statistics.median(at_once), 1.0)
        b.say(f"   (round by round: {' '.join(f'{x:.2f}' for x in at_once)})")
    if "otp" in syscalls and "pap" in syscalls:
        check("mfa otp - files+pap, system calls", syscalls["otp"] - syscalls["pap"], 1.0)
        if "otp" in top and "pap" in top:
            # By name: the module's own calls apart from FreeRADIUS's (its main loop's pselect6
            # wakes once for one request or for several, as they happen to arrive).
            otp, pap = dict(top["otp"]), dict(top["pap"])
            diff = sorted(((c, otp.get(c, 0.0) - pap.get(c, 0.0)) for c in set(otp) | set(pap)),
                          key=lambda x: -abs(x[1]))
            named = [f"{c} {d:+.2f}" for c, d in diff if abs(d) >= 0.005]
            rest = syscalls["otp"] - syscalls["pap"] - sum(d for _, d in diff)
            b.say(f"   (by name: {', '.join(named) or 'none'}; calls under 0.05 per login {rest:+.2f})")
    if all(p in instructions for p in ("pwotp", "pap", "totp", "accept")):
        # password+otp may cost what PAP costs plus what rlm_totp adds to a users-file Accept.
        budget = instructions["pap"] + instructions["totp"] - instructions["accept"]
        check("mfa password+otp / (pap + totp - Accept), instructions", instructions["pwotp"] / budget, 1.0)
    if memory is not None:
        check(f"memory the module's state adds for {args.cost_memory:,} users, MiB", memory["otp"] - memory["totp"],
              32.0)
    if "redis" in paths:
        added = [r - o for r, o in zip(cpu["redis"], cpu["otp"])]
        check("server CPU Redis adds, us/login (median of rounds)", statistics.median(added), args.target_redis_cpu)
        b.say(f"   (round by round: {' '.join(f'{x:+.1f}' for x in added)})")
        kernel = statistics.median(bare) if bare else 0.0
        if kernel > 0:
            b.say(f"   (the floor: one round trip to the same Redis costs a bare client on the server's CPU "
                  f"{kernel:.1f} us of kernel CPU,")
            b.say(f"    one at a time, median of rounds; what Redis adds / that: "
                  f"{statistics.median(added) / kernel:.2f})")
        if "redis" in instructions:
            b.say(f"   instructions Redis adds: {instructions['redis'] - instructions['otp']:+,.0f} per login")
    return checks
