//! The test suite's fake privacyIDEA as a program, for bench/bench.py part 4:
//! it answers at once, so that a benchmark measures rlm_mfa, not privacyIDEA.
//!
//!     cargo build --release --example fake_privacyidea
//!     target/release/examples/fake_privacyidea [--stdin] [PORT]
//!
//! Listens on 127.0.0.1:PORT (default 0: a free port), prints `port N`, and
//! serves until killed. With `--stdin`, each line read on standard input is
//! answered with `connections N` (the TCP connections accepted so far, which
//! shows whether the client reuses them), and the end of standard input ends the
//! program, so that it never outlives the script that started it.
//! Requests are not recorded, so memory stays flat however long it runs.
//! Users (realm corp) named with letters and digits are accepted with `pin123456`.
//!
//! SPDX-License-Identifier: GPL-2.0-or-later

#[path = "../tests/common/fake_privacyidea.rs"]
mod fake;

use std::io::{BufRead, Write};

fn main() {
    let mut control = false;
    let mut port = 0;
    for arg in std::env::args().skip(1) {
        match (arg.as_str(), arg.parse::<u16>()) {
            ("--stdin", _) => control = true,
            (_, Ok(p)) => port = p,
            _ => {
                eprintln!("usage: fake_privacyidea [--stdin] [PORT]");
                std::process::exit(2);
            }
        }
    }
    let pi = fake::FakePrivacyIdea::start_on(port, false);
    let url = pi.url();
    let port = url.rsplit(':').next().unwrap_or_default();
    let mut out = std::io::stdout();
    if writeln!(out, "port {port}").and_then(|_| out.flush()).is_err() {
        std::process::exit(1);
    }
    if !control {
        loop {
            std::thread::park();
        }
    }
    for line in std::io::stdin().lock().lines() {
        if line.is_err() || writeln!(out, "connections {}", pi.connections()).and_then(|_| out.flush()).is_err() {
            break;
        }
    }
}
