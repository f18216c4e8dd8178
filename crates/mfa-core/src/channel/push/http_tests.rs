//! The HTTP client of the contract against the fake provider and raw servers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::answer::MAX_ID;
use super::fake_push::{FakePush, PushBehaviour};
use super::http::MAX_ANSWER;
use super::test_support::*;
use super::*;

#[test]
fn create_then_poll_until_approved() {
    let fake = FakePush::start(PushBehaviour::ApproveAfter(Duration::from_millis(400)));
    let p = provider(&fake.url(), 5000);
    let started = Instant::now();
    let id = p.create(&request("r1")).unwrap();
    assert_eq!(id, "push-1");
    let (status, polls) = wait_answer(&p, &id, Duration::from_secs(5));
    assert_eq!(status, PushStatus::Approved);
    assert!(polls > 1, "approved at the first poll");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(fake.created(), 1);
    assert_eq!(fake.calls(), 1 + polls);

    let body = fake.last_create_body().unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "user": "alice",
            "message": "Approve login to vpn-gw-1 for alice?",
            "client": "vpn-gw-1",
            "request_id": "r1",
        })
    );
    let requests = fake.requests();
    let post = &requests[0];
    assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/push"));
    assert_eq!(post.header("Authorization"), Some(AUTH));
    assert_eq!(post.header("Content-Type"), Some("application/json"));
    assert_eq!(post.header("User-Agent"), Some(concat!("rlm_mfa/", env!("CARGO_PKG_VERSION"))));
    let get = &requests[1];
    assert_eq!((get.method.as_str(), get.path.as_str()), ("GET", "/push/push-1"));
    assert_eq!(get.header("Authorization"), Some(AUTH));
    assert_eq!(get.header("Accept"), Some("application/json"));
}

#[test]
fn deny_and_never_answer() {
    let fake = FakePush::start(PushBehaviour::DenyAfter(Duration::from_millis(100)));
    let p = provider(&fake.url(), 5000);
    let id = p.create(&request("r1")).unwrap();
    let (status, _) = wait_answer(&p, &id, Duration::from_secs(5));
    assert_eq!(status, PushStatus::Denied);

    fake.set_behaviour(PushBehaviour::NeverAnswer);
    let id = p.create(&request("r2")).unwrap();
    let (status, polls) = wait_answer(&p, &id, Duration::from_millis(300));
    assert_eq!(status, PushStatus::Pending);
    assert!(polls >= 2);
    // Answered later, as the fake decides when asked.
    fake.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    assert_eq!(p.status(&id), Ok(PushStatus::Approved));
    assert_eq!(fake.created(), 2);
}

#[test]
fn base_url_with_a_path_and_trailing_slash() {
    let fake = FakePush::start(PushBehaviour::ApproveAfter(Duration::ZERO));
    let p = provider(&format!("{}/api/v1//", fake.url()), 5000);
    let id = p.create(&request("r1")).unwrap();
    assert_eq!(p.status(&id), Ok(PushStatus::Approved));
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/api/v1/push", "/api/v1/push/push-1"]);
}

#[test]
fn idempotent_create_returns_the_same_id() {
    let fake = FakePush::start(PushBehaviour::NeverAnswer);
    let a = provider(&fake.url(), 5000);
    let b = provider(&fake.url(), 5000);
    let id = a.create(&request("same")).unwrap();
    assert_eq!(b.create(&request("same")).unwrap(), id);
    assert_eq!(fake.created(), 1);
    assert_eq!(fake.calls(), 2);
    // The join of an answered push works too.
    fake.set_behaviour(PushBehaviour::ApproveAfter(Duration::ZERO));
    assert_eq!(a.create(&request("same")).unwrap(), id);
    let other = a.create(&request("other")).unwrap();
    assert_ne!(other, id);
    assert_eq!(fake.created(), 2);
}

#[test]
fn cancel() {
    let fake = FakePush::start(PushBehaviour::NeverAnswer);
    let p = provider(&fake.url(), 5000);
    let id = p.create(&request("r1")).unwrap();
    p.cancel(&id).unwrap();
    assert_eq!(fake.cancelled(), 1);
    assert_eq!(p.status(&id), Ok(PushStatus::Expired));
    let last = fake.requests().pop().unwrap();
    assert_eq!(last.method, "GET");
    assert_eq!(fake.requests()[1].method, "DELETE");
    assert_eq!(fake.requests()[1].path, "/push/push-1");
    assert_eq!(p.cancel("nope"), Err(PushError::Status(404)));
    assert_eq!(p.status("nope"), Err(PushError::Status(404)));
    assert_eq!(fake.cancelled(), 1);
}

#[test]
fn error_500_is_status_500() {
    let fake = FakePush::start(PushBehaviour::Error500);
    let p = provider(&fake.url(), 5000);
    let e = p.create(&request("r1")).unwrap_err();
    assert_eq!(e, PushError::Status(500));
    assert_eq!(e.to_string(), "the push provider answered HTTP 500");
    assert_eq!(p.status("push-1"), Err(PushError::Status(500)));
    assert_eq!(p.cancel("push-1"), Err(PushError::Status(500)));
    assert_eq!(fake.calls(), 3);
    assert_eq!(fake.created(), 0);
}

#[test]
fn malformed_is_a_bad_answer() {
    let fake = FakePush::start(PushBehaviour::Malformed);
    let p = provider(&fake.url(), 5000);
    let e = p.create(&request("r1")).unwrap_err();
    assert_eq!(e, PushError::BadAnswer("it is not JSON".to_owned()));
    assert_eq!(e.to_string(), "the push provider's answer is not valid: it is not JSON");
    assert!(matches!(p.status("push-1"), Err(PushError::BadAnswer(_))));
    // Cancel reads no JSON: a 200 is enough.
    assert_eq!(p.cancel("push-1"), Ok(()));
}

#[test]
fn close_is_unreachable() {
    let fake = FakePush::start(PushBehaviour::Close);
    let started = Instant::now();
    let e = provider(&fake.url(), 5000).create(&request("r1")).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2), "it waited for the timeout");
    assert!(matches!(&e, PushError::Unreachable(r) if r.contains("closed")), "{e:?}");
    assert_clean(&e);
    assert_eq!(fake.calls(), 1);
}

#[test]
fn hang_times_out_within_the_timeout() {
    let fake = FakePush::start(PushBehaviour::Hang);
    let p = provider(&fake.url(), 1000);
    for call in 0..2 {
        let started = Instant::now();
        let e = match call {
            0 => p.create(&request("r1")).unwrap_err(),
            _ => p.status("push-1").unwrap_err(),
        };
        let took = started.elapsed();
        assert_eq!(e, PushError::Timeout);
        assert!(took >= Duration::from_millis(900), "gave up after {took:?}");
        assert!(took < Duration::from_secs(2), "took {took:?}");
    }
    assert_eq!(fake.calls(), 2);
    assert_eq!(PushError::Timeout.to_string(), "the push provider did not answer in time");
}

#[test]
fn nothing_listening_is_unreachable() {
    let e = provider(&dead_url(), 2000).create(&request("r1")).unwrap_err();
    assert_eq!(e, PushError::Unreachable("connection refused".to_owned()));
    assert_eq!(e.to_string(), "cannot reach the push provider: connection refused");
}

/// A one-connection server that reads the request, writes `answer` as is,
/// then closes. Gives the base URL and the request line it received.
fn raw_server(answer: &[u8]) -> (String, mpsc::Receiver<String>) {
    // Owned by the thread, so that no answer is leaked to make it 'static.
    let answer = answer.to_vec();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut first = String::new();
        let mut length = 0;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            if first.is_empty() {
                first = line.trim_end().to_owned();
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let _ = tx.send(first);
        let _ = stream.write_all(&answer);
    });
    (url, rx)
}

fn answered(body: &str) -> Vec<u8> {
    format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).into_bytes()
}

fn status_answer(body: &str) -> Result<PushStatus, PushError> {
    let (url, _) = raw_server(&answered(body));
    provider(&url, 2000).status("p1")
}

fn create_answer(body: &str) -> Result<String, PushError> {
    let (url, _) = raw_server(&answered(body));
    provider(&url, 2000).create(&request("r1"))
}

#[test]
fn a_header_line_without_colon_is_a_failure() {
    // Found by fuzzing (fuzz/regressions/push_answer/): ureq 2.12.1 panicked on it.
    let (url, _) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length\r\n\r\n{}");
    let e = provider(&url, 2000).status("p1").unwrap_err();
    assert_eq!(e, PushError::Unreachable("its answer is not valid HTTP".into()));
    assert!(is_failure(&e), "counts for failover and failmode");
}

#[test]
fn answers_outside_the_contract_are_bad() {
    fn bad<T>(reason: &str) -> Result<T, PushError> {
        Err(PushError::BadAnswer(reason.to_owned()))
    }
    assert_eq!(
        status_answer(r#"{"id":"p1","status":"maybe"}"#),
        bad("its status is not one of pending, approved, denied, expired")
    );
    assert_eq!(
        status_answer(r#"{"id":"p1","status":"Approved"}"#),
        bad("its status is not one of pending, approved, denied, expired")
    );
    assert_eq!(status_answer(r#"{"id":"p1"}"#), bad("it has no status"));
    assert_eq!(status_answer(r#"{"id":"p1","status":true}"#), bad("its status is not a string"));
    assert_eq!(status_answer(r#"{"status":"approved"}"#), bad("it has no id"));
    assert_eq!(status_answer(r#"{"id":7,"status":"approved"}"#), bad("its id is not a string"));
    assert_eq!(status_answer(r#"{"id":"p2","status":"approved"}"#), bad("it is about another push (its id differs)"));
    assert_eq!(status_answer(r#"["p1","approved"]"#), bad("it is not a JSON object"));
    assert_eq!(status_answer(""), bad("it is not JSON"));
    assert_eq!(status_answer(r#"{"id":"p1","status":"approved","extra":{"x":1}}"#), Ok(PushStatus::Approved));

    assert_eq!(create_answer(r#"{"status":"pending"}"#), bad("it has no id"));
    assert_eq!(create_answer(r#"{"id":"","status":"pending"}"#), bad("its id is empty"));
    let long = format!(r#"{{"id":"{}","status":"pending"}}"#, "x".repeat(MAX_ID + 1));
    assert_eq!(create_answer(&long), bad("its id is too long"));
    let huge = format!(r#"{{"id":"p1","status":"pending","pad":"{}"}}"#, "x".repeat(MAX_ANSWER));
    assert_eq!(create_answer(&huge), bad("it is too long"));
    assert_eq!(create_answer(r#"{"id":"p1","status":"approved"}"#), Ok("p1".to_owned()));
    // An answer that echoes the credential is not quoted.
    let e = create_answer(r#"{"id":"p1","status":"Bearer s3cr3t-t0ken"}"#).unwrap_err();
    assert_clean(&e);
}

#[test]
fn other_statuses_are_errors() {
    let (url, _) = raw_server(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(provider(&url, 2000).create(&request("r1")), Err(PushError::Status(202)));
    let (url, _) = raw_server(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/x\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(provider(&url, 2000).status("p1"), Err(PushError::Status(302)));
    let (url, _) = raw_server(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
    assert_eq!(provider(&url, 2000).cancel("p1"), Ok(()));
    let (url, _) = raw_server(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(provider(&url, 2000).cancel("p1"), Err(PushError::Status(401)));
    let (url, _) = raw_server(b"SSH-2.0-OpenSSH_9.6\r\n\r\n");
    let e = provider(&url, 2000).status("p1").unwrap_err();
    assert!(matches!(&e, PushError::Unreachable(r) if r.contains("not valid HTTP")), "{e:?}");
}

#[test]
fn the_id_is_one_encoded_path_segment() {
    let (url, line) = raw_server(&answered(r#"{"id":"a/b c?d%","status":"pending"}"#));
    assert_eq!(provider(&url, 2000).status("a/b c?d%"), Ok(PushStatus::Pending));
    assert_eq!(line.recv().unwrap(), "GET /push/a%2Fb%20c%3Fd%25 HTTP/1.1");
    let (url, line) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    provider(&url, 2000).cancel("Ab-9._~").unwrap();
    assert_eq!(line.recv().unwrap(), "DELETE /push/Ab-9._~ HTTP/1.1");
}

#[test]
fn tls_to_a_plain_server_fails_cleanly() {
    let (url, _) = raw_server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let url = url.replace("http://", "https://");
    let e = provider(&url, 2000).create(&request("r1")).unwrap_err();
    assert!(matches!(&e, PushError::Unreachable(r) if r.starts_with("TLS failed")), "{e:?}");
    assert_clean(&e);
}

#[test]
fn no_authorization_header_when_none() {
    let fake = FakePush::start(PushBehaviour::NeverAnswer);
    let mut cfg = config(&fake.url(), 5000);
    cfg.authorization = None;
    let p = HttpPushProvider::new(cfg).unwrap();
    let id = p.create(&request("r1")).unwrap();
    p.status(&id).unwrap();
    assert!(fake.requests().iter().all(|r| r.header("Authorization").is_none()));
}

#[test]
fn debug_hides_the_authorization_and_url_credentials() {
    let cfg = config("https://user:pw@push.example.com/api?key=K3Y#f", 5000);
    let text = format!("{cfg:?}");
    assert!(!text.contains("s3cr3t") && !text.contains("Bearer"), "{text}");
    assert!(!text.contains("K3Y") && !text.contains("pw@"), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
    assert!(text.contains("https://push.example.com/api"), "{text}");

    let p = provider("https://push.example.com/api", 5000);
    let text = format!("{p:?}");
    assert!(!text.contains("s3cr3t") && text.contains("<redacted>"), "{text}");
    let failover = Failover::new(vec![Box::new(p)], LONG);
    let text = format!("{failover:?}");
    assert!(!text.contains("s3cr3t"), "{text}");

    let mut cfg = config("https://push.example.com", 5000);
    cfg.authorization = None;
    assert!(format!("{cfg:?}").contains("authorization: None"));
}

#[test]
fn redacted_url_cases() {
    let r = |url: &str| config(url, 1000).redacted_url();
    assert_eq!(r("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
    assert_eq!(r("https://h/api/v1"), "https://h/api/v1");
    assert_eq!(r("http://h/p?q=1"), "http://h/p (credentials and query left out)");
    assert_eq!(r("http://a:b@c@h/p"), "http://h/p (credentials and query left out)");
    assert_eq!(r("http://h#x"), "http://h (credentials and query left out)");
    assert_eq!(r("ø://ü@é/ä?ö"), "ø://é/ä (credentials and query left out)");
    assert_eq!(r(""), "");
}

#[test]
fn errors_never_hold_the_authorization() {
    let mut errors = Vec::new();
    for b in [PushBehaviour::Error500, PushBehaviour::Malformed, PushBehaviour::Close] {
        let fake = FakePush::start(b);
        let p = provider(&fake.url(), 2000);
        errors.push(p.create(&request("r1")).unwrap_err());
        errors.push(p.status("push-1").unwrap_err());
    }
    let fake = FakePush::start(PushBehaviour::Hang);
    errors.push(provider(&fake.url(), 300).create(&request("r1")).unwrap_err());
    errors.push(provider(&dead_url(), 2000).status("x").unwrap_err());
    let failover =
        Failover::new(vec![Box::new(provider(&dead_url(), 2000)), Box::new(provider(&dead_url(), 2000))], LONG);
    errors.push(failover.create(&request("r1")).unwrap_err());
    errors.push(failover.status("bad").unwrap_err());
    assert_eq!(errors.len(), 10);
    for e in &errors {
        assert_clean(e);
    }
}

#[test]
fn new_refuses_bad_configurations() {
    let err = |cfg: ProviderConfig| HttpPushProvider::new(cfg).unwrap_err().message;
    let scheme = "base_url must start with http:// or https://";
    assert_eq!(err(config("ftp://h", 1000)), scheme);
    assert_eq!(err(config("h/api", 1000)), scheme);
    assert_eq!(err(config("", 1000)), scheme);
    let e = err(config("https://h/api?key=K3Y", 1000));
    assert!(e.contains("query") && !e.contains("K3Y"), "{e}");
    assert!(err(config("https://h/#x", 1000)).contains("fragment"));
    assert!(err(config("https://h/a b", 1000)).contains("space"));
    let e = err(config("http://h:99999/x", 1000));
    assert!(e.starts_with("base_url is not valid: "), "{e}");
    assert_eq!(err(config("http://[::1/x", 1000)), "base_url is not valid: invalid IPv6 address");
    assert_eq!(err(config("http://h", 0)), "timeout must be more than 0");

    let mut cfg = config("http://h", 1000);
    cfg.authorization = Some("Bearer a\r\nX-Injected: 1".to_owned());
    let e = err(cfg.clone());
    assert!(e.contains("control character") && !e.contains("Bearer"), "{e}");
    cfg.authorization = Some(" ".to_owned());
    assert!(err(cfg).contains("empty"));

    HttpPushProvider::new(config("HTTPS://push.example.com/api/", 1000)).unwrap();
    HttpPushProvider::new(config("http://127.0.0.1:8080", 1000)).unwrap();
}

#[test]
fn refusals_name_their_item_as_data() {
    let field = |cfg: ProviderConfig| HttpPushProvider::new(cfg).unwrap_err().field;
    assert_eq!(field(config("ftp://h", 1000)), "url");
    assert_eq!(field(config("https://h/api?key=K3Y", 1000)), "url");
    assert_eq!(field(config("http://h:99999/x", 1000)), "url");
    assert_eq!(field(config("http://h", 0)), "timeout");
    let mut cfg = config("http://h", 1000);
    cfg.authorization = Some(" ".to_owned());
    assert_eq!(field(cfg), "authorization");
}

#[test]
fn the_base_url_is_sent_normalised() {
    let fake = FakePush::start(PushBehaviour::NeverAnswer);
    let url = fake.url().replace("http://", "HTTP://");
    let p = provider(&format!("{url}/a%20b/"), 5000);
    let id = p.create(&request("r1")).unwrap();
    p.status(&id).unwrap();
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/a%20b/push", "/a%20b/push/push-1"]);
}

#[test]
fn error_display() {
    assert_eq!(PushError::Status(404).to_string(), "the push provider answered HTTP 404");
    assert_eq!(PushError::Unreachable("x".into()).to_string(), "cannot reach the push provider: x");
    assert_eq!(PushError::BadAnswer("y".into()).to_string(), "the push provider's answer is not valid: y");
    assert_eq!(PushError::AllDown.to_string(), "every push provider failed");
    assert_eq!(PushStatus::Approved.to_string(), "approved");
    assert_eq!(PushStatus::Pending.as_str(), "pending");
}

#[test]
fn fake_answers_a_hand_written_request() {
    let fake = FakePush::start(PushBehaviour::NeverAnswer);
    let mut s = TcpStream::connect(fake.addr()).unwrap();
    s.write_all(b"POST /push HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n{\"a\":1}").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{answer}");
    assert_eq!(fake.created(), 0);
    assert_eq!(fake.calls(), 1);
    assert_eq!(fake.last_create_body(), None);
}
