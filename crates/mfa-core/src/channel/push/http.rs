//! The generic JSON contract spoken over HTTP(S), one provider per client,
//! connections kept for the next call.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::answer::parse_answer;
use super::provider::{PushError, PushProvider, PushRequest, PushStatus};
use crate::channel::http::{self, Failure, Pool, Response};
use crate::channel::setup::SetupError;
use crate::channel::tls;

/// Where and how to reach one provider.
#[derive(Clone)]
pub struct ProviderConfig {
    /// `http://` or `https://`, with or without a path; no query or fragment.
    pub base_url: String,
    /// The value of the Authorization header, if any. A secret.
    pub authorization: Option<String>,
    /// Bound for one whole call, from the name lookup to the answer's last byte.
    pub timeout: Duration,
    /// CAs to verify the provider with instead of the system's (PEM file, directory).
    pub ca_file: Option<PathBuf>,
    pub ca_path: Option<PathBuf>,
}

impl ProviderConfig {
    /// The base URL without user information, query or fragment, which may
    /// hold credentials: fit for a log line.
    pub fn redacted_url(&self) -> String {
        http::redact(&self.base_url)
    }
}

impl fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("base_url", &self.redacted_url())
            .field("authorization", &self.authorization.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("ca_file", &self.ca_file)
            .field("ca_path", &self.ca_path)
            .finish()
    }
}

/// The most of an answer that is read; a longer one is refused.
pub(super) const MAX_ANSWER: usize = 64 * 1024;

/// What stays as is in a path segment: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// A provider that speaks the generic JSON contract over HTTP(S), reusing
/// connections between calls.
pub struct HttpPushProvider {
    cfg: ProviderConfig,
    /// The base URL as requests are sent to it, without trailing slashes.
    base: String,
    agent: ureq::Agent,
}

impl fmt::Debug for HttpPushProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpPushProvider").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl HttpPushProvider {
    /// Checks the configuration; the error names what is wrong (and never shows
    /// the URL or the Authorization value). Its field is "url" for the base URL.
    pub fn new(cfg: ProviderConfig) -> Result<HttpPushProvider, SetupError> {
        let url = cfg.base_url.as_str();
        let refuse = |field, message: &str| SetupError::new(field, message);
        if !http::has_http_scheme(url) {
            return Err(refuse("url", "base_url must start with http:// or https://"));
        }
        if url.contains(['?', '#']) {
            return Err(refuse(
                "url",
                "base_url must not have a query or fragment (a credential goes in authorization)",
            ));
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(refuse("url", "base_url holds a space or a control character"));
        }
        if cfg.timeout.is_zero() {
            return Err(refuse("timeout", "timeout must be more than 0"));
        }
        http::check_authorization(cfg.authorization.as_deref()).map_err(|e| refuse("authorization", &e))?;
        let base = http::normalize(url.trim_end_matches('/'))
            .map_err(|why| refuse("url", &format!("base_url is not valid: {why}")))?
            .trim_end_matches('/')
            .to_owned();
        let roots = tls::roots(cfg.ca_file.as_deref(), cfg.ca_path.as_deref(), [base.as_str()], "url", "base_url: ")?;
        let agent = http::agent(cfg.timeout, roots, Pool::new(1, true));
        Ok(HttpPushProvider { cfg, base, agent })
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.cfg
    }

    /// The headers of every request.
    fn headers<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        let request = request.header("Accept", "application/json");
        match &self.cfg.authorization {
            Some(auth) => request.header("Authorization", auth),
            None => request,
        }
    }

    fn push_url(&self, id: &str) -> String {
        format!("{}/push/{}", self.base, encode_segment(id))
    }
}

/// What a call gave: the body of an answer whose status is one of `expected`.
fn answer_of(sent: Result<Response, ureq::Error>, expected: &[u16]) -> Result<Vec<u8>, PushError> {
    match sent {
        Ok(response) => read_answer(response, expected),
        Err(e) => Err(failure(http::failure(&e))),
    }
}

/// The body of an answer whose status is one of `expected`, read whole. Apart
/// from the call (and public) so that the fuzz targets reach it without a network.
pub fn read_answer(response: Response, expected: &[u16]) -> Result<Vec<u8>, PushError> {
    let code = response.status().as_u16();
    if !expected.contains(&code) {
        return Err(PushError::Status(code));
    }
    match http::read_body(response, MAX_ANSWER) {
        Ok(Some(answer)) => Ok(answer),
        Ok(None) => Err(PushError::BadAnswer("it is too long".to_owned())),
        Err(f) => Err(failure(f)),
    }
}

impl PushProvider for HttpPushProvider {
    fn open(&self, req: &PushRequest<'_>) -> Result<(String, PushStatus), PushError> {
        let mut body = serde_json::json!({
            "user": req.user,
            "message": req.message,
            "client": req.client,
            "request_id": req.request_id,
        });
        if let Some(number) = req.number {
            body["number"] = serde_json::Value::from(number);
        }
        let body = body.to_string();
        let request = self.headers(self.agent.post(format!("{}/push", self.base)));
        let sent = request.header("Content-Type", "application/json").send(body.as_bytes());
        // A joined push may already be answered: any known status will do.
        parse_answer(&answer_of(sent, &[200, 201])?)
    }

    fn status(&self, id: &str) -> Result<PushStatus, PushError> {
        let sent = self.headers(self.agent.get(self.push_url(id))).call();
        let (answered_id, status) = parse_answer(&answer_of(sent, &[200])?)?;
        if answered_id != id {
            return Err(PushError::BadAnswer("it is about another push (its id differs)".to_owned()));
        }
        Ok(status)
    }

    fn cancel(&self, id: &str) -> Result<(), PushError> {
        let sent = self.headers(self.agent.delete(self.push_url(id))).call();
        answer_of(sent, &[200, 204]).map(|_| ())
    }
}

/// Percent-encodes all but the unreserved characters of RFC 3986, so that an
/// id is one path segment whatever it holds.
pub fn encode_segment(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT).to_string()
}

fn failure(f: Failure) -> PushError {
    match f {
        Failure::Timeout => PushError::Timeout,
        Failure::Unreachable(why) => PushError::Unreachable(why),
    }
}
