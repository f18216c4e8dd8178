//! A TCP relay on a free loopback port that holds each chunk of the backend's
//! answers for a delay, which the test may change while it runs: a server
//! that does its work on time and answers late (a slow privacyIDEA, a Redis
//! behind a slow link).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

pub struct SlowRelay {
    pub port: u16,
    delay_ms: Arc<AtomicU64>,
}

impl SlowRelay {
    /// Relays to `backend` on 127.0.0.1, each answer held for `delay`.
    pub fn start(backend: u16, delay: Duration) -> SlowRelay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(delay.as_millis() as u64));
        let shared = delay_ms.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(("127.0.0.1", backend)) else { continue };
                relay(client, server, shared.clone());
            }
        });
        SlowRelay { port, delay_ms }
    }

    /// Answers read from now on are held for `delay`.
    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms.store(delay.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

fn relay(client: TcpStream, server: TcpStream, delay_ms: Arc<AtomicU64>) {
    let (mut from_client, mut to_server) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_server);
        let _ = to_server.shutdown(Shutdown::Write);
    });
    // Each chunk leaves its delay after it arrived, in order.
    let (chunks, held) = mpsc::channel::<(Instant, Vec<u8>)>();
    let mut from_server = server;
    thread::spawn(move || {
        let mut buf = [0u8; 16384];
        while let Ok(n @ 1..) = from_server.read(&mut buf) {
            let due = Instant::now() + Duration::from_millis(delay_ms.load(Ordering::SeqCst));
            if chunks.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    let mut to_client = client;
    thread::spawn(move || {
        for (due, bytes) in held {
            thread::sleep(due.saturating_duration_since(Instant::now()));
            if to_client.write_all(&bytes).is_err() {
                break;
            }
        }
        let _ = to_client.shutdown(Shutdown::Write);
    });
}
