//! A server with a small, fixed thread pool, and the check that every one of its
//! threads is free again: as many parallel TOTP logins as there are threads, all
//! answered.
//!
//! The TOTP logins go to a second module instance, `probe` (mode otp, a token file
//! of its own), which runs first in authorize: the instance under test then sees
//! `Auth-Type := probe` and leaves those requests alone. The site otherwise is the
//! generated one of the password modes (pap before `mfa`, none for a State).
//!
//! The harness's radiusd.conf has a pool of 4 to 32 threads; [`start`] rewrites it
//! to exactly [`THREADS`] and restarts the server on it.

use std::fs;
use std::path::Path;

use crate::common::{now, tail, totp_at, Server, Setup, SEED_B32};

/// The pool size of the servers started here.
pub const THREADS: usize = 4;
/// Probe logins a server can take: one group of users per probe, each code used once.
const GROUPS: usize = 12;

fn probe_user(group: usize, i: usize) -> String {
    format!("probe{group}-{i}")
}

/// `setup` with the probe instance and its users, and the site that routes to both.
pub fn with_probe(setup: Setup) -> Setup {
    let users: Vec<String> = (0..GROUPS)
        .flat_map(|g| (0..THREADS).map(move |i| probe_user(g, i)))
        .map(|u| format!(r#""{u}": {{"tokens": [{{"serial": "P", "type": "totp", "secret": "{SEED_B32}"}}]}}"#))
        .collect();
    let mut setup = setup
        .file(
            "mods-enabled/probe",
            "mfa probe {\n mode = otp\n require_token = no\n tokens = ${modconfdir}/mfa/probe-tokens.json\n \
             state = ${db_dir}/mfa/probe-state.jsonl\n}\n",
        )
        .file("mods-config/mfa/probe-tokens.json", &format!(r#"{{"users": {{{}}}}}"#, users.join(", ")));
    setup.site = Some(
        "server mfa {\nlisten {\n\ttype = auth\n\tipaddr = *\n\tport = 1812\n}\n\
         authorize {\n\tprobe\n\tmfa\n\tfiles\n\tpap\n}\n\
         authenticate {\n\tAuth-Type mfa {\n\t\tif (!&State) {\n\t\t\tpap\n\t\t}\n\t\tmfa\n\t}\n\
         \tAuth-Type probe {\n\t\tprobe\n\t}\n\tAuth-Type PAP {\n\t\tpap\n\t}\n}\n}\n"
            .to_string(),
    );
    setup
}

/// Starts `setup` (with the probe) on a pool of exactly [`THREADS`] threads.
pub fn start(module: &Path, setup: Setup) -> Server {
    let mut server = Server::start(module, &with_probe(setup));
    let conf_path = server.dir.join("radiusd.conf");
    let conf = fs::read_to_string(&conf_path).unwrap();
    let mut small = conf.clone();
    for (from, to) in [
        ("start_servers = 4", format!("start_servers = {THREADS}")),
        ("max_servers = 32", format!("max_servers = {THREADS}")),
        ("min_spare_servers = 2", "min_spare_servers = 1".to_string()),
        ("max_spare_servers = 8", format!("max_spare_servers = {THREADS}")),
    ] {
        assert!(small.contains(from), "radiusd.conf.in changed: no {from:?} to rewrite");
        small = small.replace(from, &to);
    }
    fs::write(&conf_path, small).unwrap();
    server.restart();
    server
}

/// Every thread of the pool answers: [`THREADS`] TOTP logins sent at once are all
/// accepted. `group` (0 to 11) picks fresh users, so that no code is a replay.
pub fn assert_all_threads_free(server: &Server, group: usize) {
    assert!(group < GROUPS);
    let code = totp_at(now());
    let packets: Vec<String> = (0..THREADS)
        .map(|i| format!("User-Name = \"{}\", User-Password = \"{code}\"\n", probe_user(group, i)))
        .collect();
    assert_eq!(server.send_many(&packets, THREADS), (THREADS as u64, 0, 0), "a thread of the pool is still busy");
    let log = server.debug_log();
    assert!(!log.contains("Unresponsive child"), "FreeRADIUS saw a thread stuck:\n{}", tail(&log, 40));
    // The pool really is that small: started whole, never grown since the last start.
    let since_start = &log[log.rfind("Ready to process requests").unwrap()..];
    assert!(log.contains(&format!("Total threads in pool: {THREADS}")));
    assert!(!since_start.contains("Thread spawned new child"), "the pool grew past {THREADS} threads");
}
