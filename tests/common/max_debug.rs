//! FreeRADIUS at its highest debug level (-xxxx: rad_debug_lvl 4, above -X's 2)
//! over a configuration the harness generated: the harness's server is stopped
//! and the same directory and port are served again by this one.
#![allow(dead_code)]

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{tail, Server};

pub struct MaxDebug {
    child: Child,
    pub log: PathBuf,
}

impl MaxDebug {
    /// Stops `server`'s FreeRADIUS and starts one at -xxxx in its place.
    pub fn take_over(server: &mut Server) -> MaxDebug {
        server.kill9();
        let log = server.dir.join("log/max-debug.log");
        let out = fs::File::create(&log).unwrap();
        let child = Command::new("freeradius")
            .args(["-f", "-xxxx", "-l", "stdout", "-d"])
            .arg(&server.dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("cannot run freeradius");
        let mut running = MaxDebug { child, log };
        let started = Instant::now();
        loop {
            let text = String::from_utf8_lossy(&running.bytes()).into_owned();
            if text.contains("Ready to process requests") {
                return running;
            }
            if let Some(status) = running.child.try_wait().unwrap() {
                panic!("freeradius -xxxx exited ({status}):\n{}", tail(&text, 60));
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "freeradius -xxxx did not start:\n{}",
                tail(&text, 60)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The whole log, as bytes (a raw secret need not be UTF-8).
    pub fn bytes(&self) -> Vec<u8> {
        fs::read(&self.log).unwrap_or_default()
    }
}

impl Drop for MaxDebug {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
