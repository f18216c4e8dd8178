//! Joining re-sent logins across the servers of a farm (`state_store = redis`).
//! A NAS that gets no answer in time often re-sends the login to the other
//! server. The first server to see a login claims it in the shared store and
//! publishes what a re-send needs: for a push, the provider's transaction id as
//! soon as it has one (the re-send then polls that push itself, no second
//! push); for every login, its ending (the decision and its reply). A re-send
//! on another server reads the store at a short interval until one of them is
//! there, within the same bound as a re-send joining on the same server.
//!
//! The store only ever holds a keyed name of the login (an HMAC under a key
//! derived from the State key: nothing of the password or the code can be
//! tested against it) and sealed values (XChaCha20-Poly1305 under another
//! derived key, bound to the login's name and carrying an expiry), so that
//! write access to the store cannot mint an Accept or point a re-send at
//! another push.

use std::time::{Duration, Instant};

use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::challenge::StateKey;
use crate::clock::Clock;
use crate::engine::{Decision, Outcome, Trail};
use crate::sealing::{self, NONCE_LEN, OVERHEAD};
use crate::stats::{Cause, Tally};
use crate::store::state_store::StateStore;

/// How often a re-send reads the store while the first request decides.
const STORE_POLL: Duration = Duration::from_millis(100);
/// Seconds an ending stays in the store after the first request ended: long
/// enough for the re-sends waiting for it (reading every [`STORE_POLL`]), short
/// so that a login repeated later is a new one (as on one server, where the
/// ending is forgotten at once), never an answer reused.
pub(in crate::engine) const ENDING_KEPT: u64 = 3;

const TXID: u8 = 1;
const ENDING: u8 = 2;

/// What the first request of a login published.
#[derive(Clone)]
pub(in crate::engine) enum Published {
    /// The push went out under this transaction id: poll it.
    Txid(String),
    /// How the login ended.
    Ending(Decision),
}

/// The keys of one instance's farm joining, derived from the State key that
/// the servers of a farm share.
pub(in crate::engine) struct Farm {
    name_key: [u8; 32],
    seal_key: [u8; 32],
}

impl Drop for Farm {
    fn drop(&mut self) {
        self.name_key.fill(0);
        self.seal_key.fill(0);
    }
}

/// A login this request claimed: it publishes for the re-sends elsewhere.
pub(in crate::engine) struct Claimed<'a> {
    farm: &'a Farm,
    store: &'a dyn StateStore,
    login: String,
    now: u64,
    /// Whose login, for log lines.
    user: String,
}

/// How long a login is claimed in the store, and how long a re-send waits for it.
#[derive(Clone, Copy)]
pub(in crate::engine) struct Bounds {
    /// Seconds: longer than the login may take, so that no re-send claims it again.
    pub claim: u64,
    /// The longest the login may take (the bound of a re-send on the same server too).
    pub wait: Duration,
}

/// Where a request stands among the servers of the farm, any waiting done.
pub(in crate::engine) enum Turn<'a> {
    /// The first: it decides, publishing on the way, then [`Claimed::end`].
    First(Claimed<'a>),
    /// Another server's login: what that server published.
    Joined(Published),
    /// Nothing to go by (the store failed, nothing in time, nothing that
    /// opens), logged: the caller refuses as unavailable.
    Refused,
}

/// How a request stands to the other servers of the farm, at its claim.
enum Claim<'a> {
    /// The first: decide the login, publishing on the way.
    First(Claimed<'a>),
    /// Another server has it: what it published so far (empty while nothing).
    Joined(String, Vec<u8>),
}

impl Farm {
    pub(in crate::engine) fn new(key: &StateKey) -> Farm {
        Farm { name_key: key.derive("farm login name"), seal_key: key.derive("farm login ending") }
    }

    /// The name of a login in the store: `instance` and the login key (a hash
    /// of user, NAS, station, password and code), under a key of the State key.
    pub(in crate::engine) fn login(&self, instance: &str, key: &[u8; 32]) -> String {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.name_key).expect("HMAC takes any key length");
        for part in [instance.as_bytes(), key] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        data_encoding::HEXLOWER.encode(&mac.finalize().into_bytes()[..20])
    }

    /// The login `login` (see [`Farm::login`]) of `user`: claimed in `store`
    /// for this request, or, claimed already by another server, joined: what
    /// it publishes, waited for within `bounds`. The log says which, and why a refusal.
    pub(in crate::engine) fn enter<'a>(
        &'a self,
        store: &'a dyn StateStore,
        login: String,
        user: &str,
        bounds: Bounds,
        clock: &dyn Clock,
        trail: &mut Trail,
    ) -> Turn<'a> {
        let now = clock.now();
        let (login, seen) = match self.claim(store, login, bounds.claim, now, user) {
            Ok(Claim::First(claimed)) => return Turn::First(claimed),
            Ok(Claim::Joined(login, seen)) => (login, seen),
            Err(e) => {
                trail.error(format!("refused \"{user}\": cannot claim the login in the {}: {e}", store.describe()));
                return Turn::Refused;
            }
        };
        trail.info(format!("the same login of \"{user}\" is being decided on another server: joining it"));
        match self.wait(store, &login, seen, Instant::now() + bounds.wait, &|| clock.now()) {
            Ok(published) => {
                if matches!(published, Published::Ending(_)) {
                    trail.debug(format!("the login of \"{user}\" ended on the other server: answering the same"));
                }
                Turn::Joined(published)
            }
            Err(why) => {
                trail.error(format!("refused \"{user}\": the login it joined on another server: {why}"));
                Turn::Refused
            }
        }
    }

    /// Claims `login` for `ttl` seconds (longer than the login may take).
    fn claim<'a>(
        &'a self,
        store: &'a dyn StateStore,
        login: String,
        ttl: u64,
        now: u64,
        user: &str,
    ) -> Result<Claim<'a>, String> {
        Ok(match store.claim_login(&login, ttl)? {
            None => Claim::First(Claimed { farm: self, store, login, now, user: user.to_string() }),
            Some(value) => Claim::Joined(login, value),
        })
    }

    /// Reads the store until the first request of `login` published (`seen`
    /// first, what the claim found), or `deadline`: what it published, or why
    /// there is nothing to go by (the caller fails closed).
    fn wait(
        &self,
        store: &dyn StateStore,
        login: &str,
        mut seen: Vec<u8>,
        deadline: Instant,
        now: &dyn Fn() -> u64,
    ) -> Result<Published, String> {
        loop {
            if !seen.is_empty() {
                return self.open(login, &seen, now());
            }
            if Instant::now() >= deadline {
                return Err("the server that has it published nothing in time".into());
            }
            std::thread::sleep(STORE_POLL.min(deadline.saturating_duration_since(Instant::now())));
            seen = match store.read_login(login) {
                Ok(Some(value)) => value,
                Ok(None) => return Err("the server that had it ended without publishing how".into()),
                Err(e) => return Err(format!("cannot read it in the {}: {e}", store.describe())),
            };
        }
    }

    fn seal(&self, login: &str, published: &Published, expires: u64) -> Vec<u8> {
        let mut plain = vec![0; NONCE_LEN]; // the nonce's place
        match published {
            Published::Txid(txid) => {
                plain.push(TXID);
                plain.extend_from_slice(&expires.to_be_bytes());
                put(&mut plain, txid.as_bytes());
            }
            Published::Ending(decision) => {
                plain.push(ENDING);
                plain.extend_from_slice(&expires.to_be_bytes());
                encode(&mut plain, decision);
            }
        }
        sealing::seal_in_place(&self.cipher(), login.as_bytes(), &mut plain, 0);
        plain
    }

    fn open(&self, login: &str, sealed: &[u8], now: u64) -> Result<Published, String> {
        if sealed.len() < OVERHEAD + 9 {
            return Err("what the store holds for it is malformed".into());
        }
        let plain = sealing::open(&self.cipher(), login.as_bytes(), sealed)
            .ok_or_else(|| "what the store holds for it is not sealed with this State key".to_string())?;
        let expires = u64::from_be_bytes(plain[1..9].try_into().expect("8 bytes"));
        if now > expires {
            return Err("what the store holds for it has expired".into());
        }
        let mut input = &plain[9..];
        let published = match plain[0] {
            TXID => take(&mut input).and_then(|t| String::from_utf8(t.to_vec()).ok()).map(Published::Txid),
            ENDING => decode(&mut input).map(Published::Ending),
            _ => None,
        };
        published.filter(|_| input.is_empty()).ok_or_else(|| "what the store holds for it is not understood".into())
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.seal_key.into())
    }
}

impl Claimed<'_> {
    /// Publishes the push's transaction id, for re-sends to poll until `ttl`
    /// seconds from the claim. A failure is logged: the re-sends are refused.
    pub(in crate::engine) fn txid(&self, txid: &str, ttl: u64, trail: &mut Trail) {
        let sealed = self.farm.seal(&self.login, &Published::Txid(txid.to_string()), self.now + ttl);
        self.publish(&sealed, ttl, "the push", trail);
    }

    /// Publishes how the login ended, kept [`ENDING_KEPT`] seconds from `now`.
    /// A failure is logged: the re-sends are refused.
    pub(in crate::engine) fn end(&self, decision: &Decision, now: u64, trail: &mut Trail) {
        let sealed = self.farm.seal(&self.login, &Published::Ending(decision.clone()), now + ENDING_KEPT);
        self.publish(&sealed, ENDING_KEPT, "how it ended", trail);
    }

    fn publish(&self, sealed: &[u8], ttl: u64, what: &str, trail: &mut Trail) {
        if let Err(e) = self.store.publish_login(&self.login, sealed, ttl) {
            trail.warn(format!(
                "cannot publish {what} of the login of \"{}\" in the {}: {e} (a re-send of it to another server \
                 is refused)",
                self.user,
                self.store.describe()
            ));
        }
    }
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("a RADIUS attribute's length");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}

fn take<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::from(u16::from_be_bytes(input.get(..2)?.try_into().ok()?));
    let bytes = input.get(2..2 + len)?;
    *input = &input[2 + len..];
    Some(bytes)
}

/// A decision as bytes: its outcome, Reply-Messages, State and reply attributes.
fn encode(out: &mut Vec<u8>, decision: &Decision) {
    out.push(Outcome::ALL.iter().position(|o| *o == decision.outcome).expect("every outcome is listed") as u8);
    out.push(decision.messages.len().min(255) as u8);
    for message in decision.messages.iter().take(255) {
        put(out, message.as_bytes());
    }
    match &decision.state {
        Some(state) => {
            out.push(1);
            put(out, state);
        }
        None => out.push(0),
    }
    out.push(decision.attributes.len().min(255) as u8);
    for (name, value) in decision.attributes.iter().take(255) {
        put(out, name.as_bytes());
        put(out, value.as_bytes());
    }
    // A refusal's cause, for the counters of the server that joins (0: none).
    out.push(match decision.tally {
        Tally::Reject { cause, .. } => 1 + Cause::ALL.iter().position(|c| *c == cause).unwrap_or(0) as u8,
        _ => 0,
    });
}

fn decode(input: &mut &[u8]) -> Option<Decision> {
    let text = |input: &mut &[u8]| take(input).and_then(|t| String::from_utf8(t.to_vec()).ok());
    let byte = |input: &mut &[u8]| {
        let (first, rest) = input.split_first()?;
        *input = rest;
        Some(*first)
    };
    let outcome = *Outcome::ALL.get(usize::from(byte(input)?))?;
    let mut decision = Decision::refuse(outcome, String::new());
    decision.messages.clear();
    for _ in 0..byte(input)? {
        decision.messages.push(text(input)?);
    }
    if byte(input)? == 1 {
        decision.state = Some(take(input)?.to_vec());
    }
    for _ in 0..byte(input)? {
        decision.attributes.push((text(input)?, text(input)?));
    }
    if let Some(&cause) = byte(input).and_then(|b| Cause::ALL.get(usize::from(b).checked_sub(1)?)) {
        decision.tally = Tally::Reject { cause, locks: false };
    }
    Some(decision)
}

#[cfg(test)]
pub(in crate::engine) mod testing {
    use std::sync::{Arc, Mutex};

    use crate::store::journal::{LockState, TokenState};
    use crate::store::state_store::{Claim, StateStore, StoreError, Take};

    /// A store of logins in memory that its clones share, as the servers of a
    /// farm share Redis (without expiry). The third field fails the clearing of
    /// failures alone: a store lost between a push's approval and its accept.
    #[derive(Clone, Default)]
    pub(in crate::engine) struct Logins(pub Arc<Mutex<std::collections::HashMap<String, Vec<u8>>>>, pub Down, pub Down);

    /// Set: every operation on the logins fails, as with Redis down.
    pub(in crate::engine) type Down = Arc<std::sync::atomic::AtomicBool>;

    impl Logins {
        fn up(&self) -> Result<(), StoreError> {
            match self.1.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err("no answer within timeout_ms".into()),
                false => Ok(()),
            }
        }
    }

    impl StateStore for Logins {
        fn describe(&self) -> String {
            "test store".into()
        }
        fn cached_lock(&self, _: &str) -> LockState {
            LockState::default()
        }
        fn current_lock(&self, _: &str) -> Result<LockState, StoreError> {
            Ok(LockState::default())
        }
        fn token(&self, _: &str, _: &str) -> TokenState {
            TokenState::default()
        }
        fn claim_totp_step(&self, _: &str, _: &str, _: u64) -> Result<bool, StoreError> {
            Ok(true)
        }
        fn take_unless_locked(&self, _: &str, _: Claim<'_>, _: u64) -> Result<Take, StoreError> {
            Ok(Take::Taken)
        }
        fn claim_hotp_counter(&self, _: &str, _: &str, _: u64) -> Result<bool, StoreError> {
            Ok(true)
        }
        fn record_failure(&self, _: &str, _: u64, _: u32, _: u64) -> Result<LockState, StoreError> {
            Ok(LockState::default())
        }
        fn reset_failures(&self, _: &str) -> Result<(), StoreError> {
            match self.2.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err("no answer within timeout_ms".into()),
                false => Ok(()),
            }
        }
        fn forget(&self, _: &str) -> Result<(), StoreError> {
            Ok(())
        }
        fn use_state_once(&self, _: &str, _: &[u8; 16], _: u64, _: u64) -> Result<bool, StoreError> {
            Ok(true)
        }
        fn join_push(&self, _: &str, _: &str, _: u64) -> Result<Option<String>, StoreError> {
            Ok(None)
        }
        fn claim_login(&self, login: &str, _: u64) -> Result<Option<Vec<u8>>, StoreError> {
            self.up()?;
            let mut all = self.0.lock().unwrap();
            match all.get(login) {
                Some(value) => Ok(Some(value.clone())),
                None => {
                    all.insert(login.into(), vec![]);
                    Ok(None)
                }
            }
        }
        fn publish_login(&self, login: &str, value: &[u8], _: u64) -> Result<(), StoreError> {
            self.up()?;
            self.0.lock().unwrap().insert(login.into(), value.to_vec());
            Ok(())
        }
        fn read_login(&self, login: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.up()?;
            Ok(self.0.lock().unwrap().get(login).cloned())
        }
        fn count_request(&self, _: &str, _: &str, _: u64, _: u64) -> Result<(u32, u64), StoreError> {
            Ok((1, 60))
        }
        fn take_upkeep_error(&self) -> Option<StoreError> {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::Logins;
    use super::*;

    fn farm(n: u8) -> Farm {
        Farm::new(&StateKey::from_bytes([n; 32]))
    }

    fn joined(claim: Result<Claim<'_>, String>) -> (String, Vec<u8>) {
        match claim {
            Ok(Claim::Joined(login, seen)) => (login, seen),
            _ => panic!("a re-send joins"),
        }
    }

    #[test]
    fn a_resend_gets_the_txid_then_the_ending_the_first_published() {
        let (farm, store) = (farm(1), Logins::default());
        let login = farm.login("mfa", &[7; 32]);
        assert_ne!(login, farm.login("mfa2", &[7; 32]), "per instance");
        assert_ne!(login, self::farm(2).login("mfa", &[7; 32]), "keyed");
        let Ok(Claim::First(first)) = farm.claim(&store, login.clone(), 30, 100, "alice") else { panic!("the first") };
        let (name, seen) = joined(farm.claim(&store, login.clone(), 30, 100, "alice"));
        assert!(seen.is_empty(), "nothing published yet");
        let soon = Instant::now() + Duration::from_millis(300);
        assert!(farm.wait(&store, &name, seen, soon, &|| 100).is_err(), "nothing in time: fail closed");

        first.txid("tx-1", 30, &mut Trail::default());
        let (name, seen) = joined(farm.claim(&store, login.clone(), 30, 100, "alice"));
        let far = Instant::now() + Duration::from_secs(5);
        assert!(matches!(farm.wait(&store, &name, seen, far, &|| 100), Ok(Published::Txid(t)) if t == "tx-1"));

        let mut reply = Decision::challenge(vec![1, 2, 3], vec!["one".into(), "two".into()]);
        reply.attributes.push(("Class".into(), "x".into()));
        first.end(&reply, 110, &mut Trail::default());
        let (name, seen) = joined(farm.claim(&store, login.clone(), 30, 100, "alice"));
        let Ok(Published::Ending(ending)) = farm.wait(&store, &name, seen.clone(), far, &|| 110 + ENDING_KEPT) else {
            panic!("the ending")
        };
        assert_eq!(ending.outcome, Outcome::Challenge);
        assert_eq!(ending.messages, ["one", "two"]);
        assert_eq!(ending.state, Some(vec![1, 2, 3]));
        assert_eq!(ending.attributes, [("Class".to_string(), "x".to_string())]);
        assert!(farm.wait(&store, &name, seen, far, &|| 110 + ENDING_KEPT + 1).is_err(), "kept for a while only");
    }

    #[test]
    fn an_ending_travels_with_its_cause_but_not_as_a_second_lockout() {
        let mut refused = Decision::reject(Cause::Replayed, "Wrong or already used code".into());
        refused.tally = Tally::Reject { cause: Cause::Replayed, locks: true };
        for (decision, tally) in
            [(refused, Tally::Reject { cause: Cause::Replayed, locks: false }), (Decision::accept(), Tally::Accept)]
        {
            let mut bytes = vec![];
            encode(&mut bytes, &decision);
            let back = decode(&mut bytes.as_slice()).unwrap();
            assert_eq!((back.outcome, back.messages.clone(), back.tally), (decision.outcome, decision.messages, tally));
        }
        // A value written without the cause (an older server of the farm) still opens.
        let mut bytes = vec![];
        encode(&mut bytes, &Decision::accept());
        bytes.pop();
        assert_eq!(decode(&mut bytes.as_slice()).map(|d| d.outcome), Some(Outcome::Ok));
    }

    #[test]
    fn a_waiting_resend_sees_the_ending_published_meanwhile() {
        let (farm, store) = (farm(1), Logins::default());
        let login = farm.login("mfa", &[8; 32]);
        let Ok(Claim::First(first)) = farm.claim(&store, login.clone(), 30, 100, "alice") else { panic!("the first") };
        let (name, seen) = joined(farm.claim(&store, login, 30, 100, "alice"));
        std::thread::scope(|s| {
            let waiting = s.spawn(|| farm.wait(&store, &name, seen, Instant::now() + Duration::from_secs(30), &|| 100));
            std::thread::sleep(Duration::from_millis(150));
            first.end(&Decision::accept(), 100, &mut Trail::default());
            let ending = waiting.join().unwrap();
            assert!(matches!(ending, Ok(Published::Ending(d)) if d.outcome == Outcome::Ok));
        });
    }

    #[test]
    fn what_the_key_did_not_seal_for_this_login_is_refused() {
        let (farm, store) = (farm(1), Logins::default());
        let (alice, bob) = (farm.login("mfa", &[1; 32]), farm.login("mfa", &[2; 32]));
        let far = Instant::now() + Duration::from_secs(5);
        // Bob's Accept moved onto Alice's login.
        let Ok(Claim::First(first)) = farm.claim(&store, bob.clone(), 30, 100, "bob") else { panic!("the first") };
        first.end(&Decision::accept(), 100, &mut Trail::default());
        let moved = store.read_login(&bob).unwrap().unwrap();
        assert!(farm.wait(&store, &alice, moved.clone(), far, &|| 100).is_err());
        // An Accept sealed with another State key, any flipped byte, noise, a login gone.
        let other = self::farm(2);
        let Ok(Claim::First(forged)) = other.claim(&store, alice.clone(), 30, 100, "alice") else {
            panic!("the first")
        };
        forged.end(&Decision::accept(), 100, &mut Trail::default());
        let forged = store.read_login(&alice).unwrap().unwrap();
        assert!(farm.wait(&store, &alice, forged, far, &|| 100).is_err());
        for i in 0..moved.len() {
            let mut bad = moved.clone();
            bad[i] ^= 1;
            assert!(farm.wait(&store, &bob, bad, far, &|| 100).is_err(), "byte {i}");
        }
        assert!(farm.wait(&store, &bob, vec![0; 30], far, &|| 100).is_err());
        assert!(farm.wait(&store, &bob, moved, far, &|| 100).is_ok(), "the untouched one opens");
        assert!(farm.wait(&store, "gone", vec![], far, &|| 100).is_err(), "no such login: nothing to join");
    }

    #[test]
    fn a_store_that_fails_refuses_the_login_with_a_log_line() {
        use crate::clock::FixedClock;
        let (farm, store) = (farm(1), Logins::default());
        let clock = FixedClock::new(100);
        let login = || farm.login("mfa", &[3; 32]);
        let bounds = Bounds { claim: 6, wait: Duration::from_secs(5) };
        store.1.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut trail = Trail::default();
        assert!(matches!(farm.enter(&store, login(), "alice", bounds, &clock, &mut trail), Turn::Refused));
        let lines: Vec<&str> = trail.log.iter().map(|l| l.text.as_str()).collect();
        assert!(lines.iter().any(|l| l.contains("cannot claim the login") && l.contains("timeout_ms")), "{lines:?}");

        // Claimed while the store answered, then down: the first logs that it
        // cannot publish, and a re-send waiting for it is refused.
        store.1.store(false, std::sync::atomic::Ordering::SeqCst);
        let Turn::First(first) = farm.enter(&store, login(), "alice", bounds, &clock, &mut Trail::default()) else {
            panic!("the first")
        };
        std::thread::scope(|s| {
            let waiting = s.spawn(|| {
                let mut trail = Trail::default();
                let turn = farm.enter(&store, login(), "alice", bounds, &clock, &mut trail);
                (matches!(turn, Turn::Refused), trail.log.iter().map(|l| l.text.clone()).collect::<Vec<_>>())
            });
            std::thread::sleep(Duration::from_millis(150));
            store.1.store(true, std::sync::atomic::Ordering::SeqCst);
            let mut trail = Trail::default();
            first.end(&Decision::accept(), 100, &mut trail);
            assert!(trail.log.iter().any(|l| l.text.contains("cannot publish how it ended")));
            let (refused, lines) = waiting.join().unwrap();
            assert!(refused, "{lines:?}");
            assert!(lines.iter().any(|l| l.contains("the login it joined on another server: cannot read it")));
        });
    }
}
