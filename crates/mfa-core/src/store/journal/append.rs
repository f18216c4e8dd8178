//! Writing: every change is one record appended under the file lock, after
//! catching up with what other writers appended, so that a claim (a code used)
//! is decided on the latest state and can succeed only once.

use std::io::{self, Write};

use super::error::{io_error, JournalError};
use super::record::Record;
use super::{LockState, StateJournal};
use crate::store::state_store::{Claim, FailureCount, Take};

/// Answered States one user may hold until they expire (a person answers a
/// few per login; a State lives at most challenge_timeout, 3600 s at most).
pub const MAX_ANSWERED_PER_USER: u32 = 1_000;

impl StateJournal {
    /// Records an accepted TOTP step (the stored step never goes down).
    pub fn set_totp_step(&mut self, user: &str, serial: &str, step: u64) -> Result<(), JournalError> {
        self.append(&Record::Totp { u: user, s: serial, v: step })
    }

    /// Records the next acceptable HOTP counter (it never goes down).
    pub fn set_hotp_counter(&mut self, user: &str, serial: &str, next_counter: u64) -> Result<(), JournalError> {
        self.append(&Record::Hotp { u: user, s: serial, v: next_counter })
    }

    /// Like `set_totp_step`, but only if `step` is later than the last accepted
    /// step as seen under the file lock; returns whether it was. This closes the
    /// window in which two processes could both accept the same code.
    pub fn claim_totp_step(&mut self, user: &str, serial: &str, step: u64) -> Result<bool, JournalError> {
        self.append_if(&Record::Totp { u: user, s: serial, v: step }, |j| {
            j.token(user, serial).last_step.is_none_or(|last| step > last)
        })
    }

    /// Like `set_hotp_counter`, but only if it moves the counter forward.
    pub fn claim_hotp_counter(&mut self, user: &str, serial: &str, next_counter: u64) -> Result<bool, JournalError> {
        let record = Record::Hotp { u: user, s: serial, v: next_counter };
        self.append_if(&record, |j| next_counter > j.token(user, serial).next_counter)
    }

    /// Records that `user` answered the challenge State `id` (valid until
    /// `expires`), unless it was answered before, as seen under the file lock
    /// after catching up with every other writer; returns whether this was the
    /// first answer. The record outlives a restart, so an answered State stays
    /// answered until it expires.
    pub fn use_state_once(&mut self, user: &str, id: &[u8; 16], expires: u64, now: u64) -> Result<bool, JournalError> {
        self.state.forget_used_before(now);
        // One user (with a valid password) cannot fill the journal with answered
        // States: past the bound their answers fail until some expire; others' do not.
        let held = self.state.answered_by(user);
        if held >= MAX_ANSWERED_PER_USER {
            return Err(JournalError::TooManyAnswered { user: user.to_owned(), held });
        }
        let hex = data_encoding::HEXLOWER.encode(id);
        self.append_if(&Record::Used { u: user, s: &hex, v: expires }, |j| !j.state.is_used(id, now))
    }

    pub fn set_lock(&mut self, user: &str, lock: LockState) -> Result<(), JournalError> {
        self.append(&Record::Lock { u: user, f: lock.failures, until: lock.locked_until })
    }

    /// Read-modify-write of a user's failures and lock, under the file lock and
    /// after catching up with every other writer, so that two processes (or two
    /// module instances) counting failures of one user neither lose a count nor
    /// undo each other's lock. Returns the state written.
    pub fn update_lock(
        &mut self,
        user: &str,
        change: impl FnOnce(LockState) -> LockState,
    ) -> Result<LockState, JournalError> {
        // With no time to be locked at, the change is always made.
        match self.count_failure_unless_locked(user, None, change)? {
            FailureCount::Counted(lock) | FailureCount::Locked(lock) => Ok(lock),
        }
    }

    /// [`StateJournal::update_lock`], but not for a user locked at `locked_at`
    /// (when given), checked in the same hold of the file lock: a locked user's
    /// failure is not counted.
    pub fn count_failure_unless_locked(
        &mut self,
        user: &str,
        locked_at: Option<u64>,
        change: impl FnOnce(LockState) -> LockState,
    ) -> Result<FailureCount, JournalError> {
        let update = |j: &mut Self| {
            j.read_new(true)?;
            let lock = j.lock(user);
            if locked_at.is_some_and(|now| lock.is_locked(now)) {
                return Ok(FailureCount::Locked(lock));
            }
            let next = change(lock);
            let record = Record::Lock { u: user, f: next.failures, until: next.locked_until };
            j.write_records(&record.line(), &[record])?;
            Ok(FailureCount::Counted(next))
        };
        self.under_file_lock(update, |counted| matches!(counted, FailureCount::Counted(_)))
    }

    /// Clears failures and lockout.
    pub fn unlock(&mut self, user: &str) -> Result<(), JournalError> {
        self.append(&Record::Unlock { u: user })
    }

    /// Drops all state of a user (after the user was removed from the token file).
    pub fn forget(&mut self, user: &str) -> Result<(), JournalError> {
        self.append(&Record::Forget { u: user })
    }

    fn append(&mut self, record: &Record<'_>) -> Result<(), JournalError> {
        self.append_if(record, |_| true).map(|_| ())
    }

    /// Under the file lock: catch up, and if `wanted` still holds, append.
    fn append_if(&mut self, record: &Record<'_>, wanted: impl FnOnce(&Self) -> bool) -> Result<bool, JournalError> {
        let line = record.line();
        self.under_file_lock(|j| j.append_locked(&line, record, wanted), |appended| *appended)
    }

    /// Runs `change` under the file lock; when `wrote` says it appended, starts a
    /// compaction if one is due; then lets go of the lock.
    fn under_file_lock<T>(
        &mut self,
        change: impl FnOnce(&mut Self) -> Result<T, JournalError>,
        wrote: impl FnOnce(&T) -> bool,
    ) -> Result<T, JournalError> {
        self.lock_current()?;
        let result = change(self);
        if result.as_ref().is_ok_and(wrote) {
            self.compact_if_due();
        }
        // After a compaction `file` is the new, unlocked file; the old one's lock
        // went with its descriptor. Unlocking an unlocked file is harmless.
        self.release();
        result
    }

    fn append_locked(
        &mut self,
        line: &[u8],
        record: &Record<'_>,
        wanted: impl FnOnce(&Self) -> bool,
    ) -> Result<bool, JournalError> {
        self.read_new(true)?;
        if !wanted(self) {
            return Ok(false);
        }
        self.write_records(line, std::slice::from_ref(record))?;
        Ok(true)
    }

    /// Takes what an accepted login claims unless the user is locked at `now`, in
    /// one hold of the file lock: catch up, check the lock, check the claim, append
    /// it (and the clearing of the failures, in the same write). The same decision
    /// as a lock check followed by a claim, without catching up twice, and without
    /// a lock another writer set between the two being missed.
    pub fn take_unless_locked(&mut self, user: &str, claim: Claim<'_>, now: u64) -> Result<Take, JournalError> {
        self.under_file_lock(|j| j.take_locked(user, claim, now), |taken| *taken == Take::Taken)
    }

    fn take_locked(&mut self, user: &str, claim: Claim<'_>, now: u64) -> Result<Take, JournalError> {
        self.read_new(true)?;
        let lock = self.lock(user);
        if lock.is_locked(now) {
            return Ok(Take::Locked(lock));
        }
        let record = match claim {
            Claim::TotpStep { serial, step } => {
                if self.token(user, serial).last_step.is_some_and(|last| step <= last) {
                    return Ok(Take::Used);
                }
                Some(Record::Totp { u: user, s: serial, v: step })
            }
            Claim::HotpCounter { serial, next } => {
                if next <= self.token(user, serial).next_counter {
                    return Ok(Take::Used);
                }
                Some(Record::Hotp { u: user, s: serial, v: next })
            }
            Claim::Nothing => None,
        };
        let clear = (lock.failures > 0).then_some(Record::Unlock { u: user });
        let (both, alone);
        let records: &[Record<'_>] = match (record, clear) {
            (Some(claim), Some(clear)) => {
                both = [claim, clear];
                &both
            }
            (Some(one), None) | (None, Some(one)) => {
                alone = [one];
                &alone
            }
            (None, None) => return Ok(Take::Taken),
        };
        let mut line = std::mem::take(&mut self.claim_line);
        line.clear();
        records.iter().for_each(|r| r.write_line(&mut line));
        let written = self.write_records(&line, records);
        self.claim_line = line;
        written?;
        Ok(Take::Taken)
    }

    /// Under the lock, caught up: appends `line` (the records, each with its
    /// newline) and applies the records.
    fn write_records(&mut self, line: &[u8], records: &[Record<'_>]) -> Result<(), JournalError> {
        // One write() on an O_APPEND descriptor: other readers see whole lines
        // or (briefly) a prefix of the last without a newline, which they skip.
        let written = (&self.file).write(line).map_err(io_error("append to", &self.path))?;
        if written != line.len() {
            // A half line would make the journal unreadable for everyone.
            let _ = self.file.set_len(self.offset);
            return Err(io_error("append to", &self.path)(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write (disk full?)",
            )));
        }
        self.offset += line.len() as u64;
        self.lines += records.len() as u64;
        self.since_compaction += records.len();
        for record in records {
            self.state.apply(record);
        }
        if self.shared {
            self.appended += 1;
        } else if self.opts.fsync {
            self.file.sync_data().map_err(io_error("sync", &self.path))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::fixtures::{new_dir, open, totp};
    use super::super::{JournalOptions, LockState, StateJournal, TokenState};

    /// The one-hold take decides as a lock check and then a claim would, on the
    /// state another writer left, and its records read back the same after a reopen.
    #[test]
    fn a_take_checks_the_lock_and_the_claim_under_one_hold_of_the_file_lock() {
        use crate::store::state_store::{Claim, Take};
        let dir = new_dir();
        let path = dir.journal_path();
        let (mut module, mut other) = (open(&path), open(&path));
        let step = |step| Claim::TotpStep { serial: "T1", step };
        assert_eq!(module.take_unless_locked("alice", step(10), 100).unwrap(), Take::Taken);
        assert_eq!(other.take_unless_locked("alice", step(10), 100).unwrap(), Take::Used, "caught up");
        assert_eq!(other.take_unless_locked("alice", step(9), 100).unwrap(), Take::Used);
        // Failures another writer counted are cleared by the take, in the same write.
        other.set_lock("alice", LockState { failures: 2, locked_until: 0 }).unwrap();
        let size = fs::metadata(&path).unwrap().len();
        assert_eq!(module.take_unless_locked("alice", step(11), 100).unwrap(), Take::Taken);
        let added = fs::read_to_string(&path).unwrap()[size as usize..].to_string();
        assert_eq!(
            added,
            "{\"k\":\"totp\",\"u\":\"alice\",\"s\":\"T1\",\"v\":11}\n{\"k\":\"unlock\",\"u\":\"alice\"}\n"
        );
        assert_eq!(module.lock("alice"), LockState::default());
        // A lock another writer set refuses the take and writes nothing; it ends on time.
        let locked = LockState { failures: 3, locked_until: 160 };
        other.set_lock("alice", locked).unwrap();
        let size = fs::metadata(&path).unwrap().len();
        assert_eq!(module.take_unless_locked("alice", step(12), 150).unwrap(), Take::Locked(locked));
        assert_eq!(fs::metadata(&path).unwrap().len(), size);
        assert_eq!(module.take_unless_locked("alice", step(12), 160).unwrap(), Take::Taken);
        let again = open(&path);
        assert_eq!(again.token("alice", "T1"), totp(12));
        assert_eq!(again.lock("alice"), LockState::default());
        // An HOTP counter, and a success that claims nothing, the same way.
        let counter = |next| Claim::HotpCounter { serial: "H1", next };
        assert_eq!(module.take_unless_locked("alice", counter(3), 160).unwrap(), Take::Taken);
        assert_eq!(other.take_unless_locked("alice", counter(3), 160).unwrap(), Take::Used, "caught up");
        other.set_lock("alice", locked).unwrap();
        assert_eq!(module.take_unless_locked("alice", counter(4), 150).unwrap(), Take::Locked(locked));
        assert_eq!(module.take_unless_locked("alice", Claim::Nothing, 150).unwrap(), Take::Locked(locked));
        let size = fs::metadata(&path).unwrap().len();
        assert_eq!(module.take_unless_locked("alice", Claim::Nothing, 160).unwrap(), Take::Taken);
        let added = fs::read_to_string(&path).unwrap()[size as usize..].to_string();
        assert_eq!(added, "{\"k\":\"unlock\",\"u\":\"alice\"}\n", "nothing but the clearing");
        let size = fs::metadata(&path).unwrap().len();
        assert_eq!(module.take_unless_locked("alice", Claim::Nothing, 160).unwrap(), Take::Taken);
        assert_eq!(fs::metadata(&path).unwrap().len(), size, "no failures: nothing written");
        assert_eq!(open(&path).token("alice", "H1").next_counter, 3);
    }

    /// A failure counted unless locked sees the lock another writer set, and
    /// then counts nothing and writes nothing.
    #[test]
    fn a_failure_is_not_counted_for_a_user_another_writer_locked() {
        use crate::store::state_store::FailureCount;
        let dir = new_dir();
        let path = dir.journal_path();
        let (mut module, mut other) = (open(&path), open(&path));
        let fail = |lock: LockState| lock.after_failure(100, 3, 60);
        let counted = module.count_failure_unless_locked("alice", Some(100), fail).unwrap();
        assert_eq!(counted, FailureCount::Counted(LockState { failures: 1, locked_until: 0 }));
        let locked = LockState { failures: 3, locked_until: 160 };
        other.set_lock("alice", locked).unwrap();
        let size = fs::metadata(&path).unwrap().len();
        assert_eq!(module.count_failure_unless_locked("alice", Some(100), fail).unwrap(), FailureCount::Locked(locked));
        assert_eq!(fs::metadata(&path).unwrap().len(), size);
        let fail_later = |lock: LockState| lock.after_failure(160, 3, 60);
        let counted = module.count_failure_unless_locked("alice", Some(160), fail_later).unwrap();
        assert_eq!(counted, FailureCount::Counted(LockState { failures: 1, locked_until: 0 }), "the lock ran out");
        assert_eq!(open(&path).lock("alice"), LockState { failures: 1, locked_until: 0 });
    }

    #[test]
    fn steps_and_counters_only_go_up() {
        let dir = new_dir();
        let mut j = open(&dir.journal_path());
        j.set_totp_step("alice", "T1", 100).unwrap();
        j.set_totp_step("alice", "T1", 99).unwrap();
        assert_eq!(j.token("alice", "T1"), totp(100));
        j.set_hotp_counter("alice", "H1", 7).unwrap();
        j.set_hotp_counter("alice", "H1", 3).unwrap();
        assert_eq!(j.token("alice", "H1").next_counter, 7);
        assert_eq!(j.token("alice", "H1").last_step, None);
        assert_eq!(j.token("bob", "T1"), TokenState::default());

        assert!(!j.claim_totp_step("alice", "T1", 100).unwrap());
        assert!(j.claim_totp_step("alice", "T1", 101).unwrap());
        assert!(j.claim_totp_step("alice", "T2", 0).unwrap());
        assert!(!j.claim_hotp_counter("alice", "H1", 7).unwrap());
        assert!(j.claim_hotp_counter("alice", "H1", 8).unwrap());

        let again = open(&dir.journal_path());
        assert_eq!(again.token("alice", "T1"), totp(101));
        assert_eq!(again.token("alice", "T2"), totp(0));
        assert_eq!(again.token("alice", "H1").next_counter, 8);
    }

    #[test]
    fn lock_unlock_and_forget() {
        let dir = new_dir();
        let mut j = open(&dir.journal_path());
        let locked = LockState { failures: 5, locked_until: 1_700_000_000 };
        j.set_lock("alice", locked).unwrap();
        j.set_totp_step("alice", "T1", 5).unwrap();
        j.set_lock("bob", LockState { failures: 2, locked_until: 0 }).unwrap();
        assert_eq!(j.lock("alice"), locked);
        assert!(locked.is_locked(1_699_999_999) && !locked.is_locked(1_700_000_000));

        j.unlock("alice").unwrap();
        assert_eq!(j.lock("alice"), LockState::default());
        assert_eq!(j.token("alice", "T1"), totp(5), "unlock keeps replay state");
        j.unlock("nobody").unwrap();

        j.forget("alice").unwrap();
        assert_eq!(j.token("alice", "T1"), TokenState::default());
        assert_eq!(j.lock("bob").failures, 2);
        assert_eq!(j.users(), ["bob"]);

        let again = open(&dir.journal_path());
        assert_eq!(again.token("alice", "T1"), TokenState::default());
        assert_eq!(again.lock("alice"), LockState::default());
        assert_eq!(again.lock("bob").failures, 2);
    }

    #[test]
    fn records_reach_the_file_before_returning() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut j = open(&path);
        j.set_totp_step("alice", "T1", 42).unwrap();
        j.set_lock("alice", LockState { failures: 1, locked_until: 9 }).unwrap();
        j.unlock("alice").unwrap();
        j.set_hotp_counter("alice", "H\"1", 3).unwrap();
        j.forget("x").unwrap();
        // Read behind the journal's back, while it is still open (as after kill -9).
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            "{\"k\":\"totp\",\"u\":\"alice\",\"s\":\"T1\",\"v\":42}\n\
             {\"k\":\"lock\",\"u\":\"alice\",\"f\":1,\"until\":9}\n\
             {\"k\":\"unlock\",\"u\":\"alice\"}\n\
             {\"k\":\"hotp\",\"u\":\"alice\",\"s\":\"H\\\"1\",\"v\":3}\n\
             {\"k\":\"forget\",\"u\":\"x\"}\n"
        );
        drop(j);
    }

    #[test]
    fn two_journals_see_each_other() {
        let dir = new_dir();
        let path = dir.journal_path();
        let mut module = open(&path);
        let mut admin = open(&path);

        module.set_totp_step("alice", "T1", 100).unwrap();
        module.set_lock("alice", LockState { failures: 3, locked_until: 500 }).unwrap();
        assert_eq!(admin.token("alice", "T1"), TokenState::default());
        admin.refresh().unwrap();
        assert_eq!(admin.token("alice", "T1"), totp(100));
        assert_eq!(admin.lock("alice").failures, 3);

        admin.unlock("alice").unwrap();
        admin.set_hotp_counter("alice", "H1", 20).unwrap();
        module.refresh().unwrap();
        assert_eq!(module.lock("alice"), LockState::default());
        assert_eq!(module.token("alice", "H1").next_counter, 20);

        // A writer catches up before appending, so a claim sees the other's step.
        admin.set_totp_step("alice", "T1", 105).unwrap();
        assert!(!module.claim_totp_step("alice", "T1", 105).unwrap());
        assert_eq!(module.token("alice", "T1"), totp(105));

        // Refresh with nothing new is a no-op.
        module.refresh().unwrap();
        assert_eq!(module.token("alice", "T1"), totp(105));
    }

    #[test]
    fn concurrent_claims_never_succeed_twice_across_compactions() {
        let dir = new_dir();
        let path = dir.journal_path();
        open(&path);
        let opts = JournalOptions { fsync: false, compact_after: 25 };
        let won: u64 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4)
                .map(|_| {
                    scope.spawn(|| {
                        let mut j = StateJournal::open(&path, opts).unwrap();
                        let mut won = 0;
                        for _ in 0..150 {
                            j.refresh().unwrap();
                            let next = j.token("alice", "H1").next_counter + 1;
                            // Exactly one writer can move the counter from n to n + 1.
                            if j.claim_hotp_counter("alice", "H1", next).unwrap() {
                                won += 1;
                            }
                        }
                        won
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        assert!(won > 0);
        assert_eq!(open(&path).token("alice", "H1").next_counter, won);
    }

    #[test]
    fn an_answered_state_stays_answered_across_writers_reopening_and_compaction() {
        let dir = new_dir();
        let path = dir.journal_path();
        let (id, other) = ([7u8; 16], [8u8; 16]);
        let mut module = open(&path);
        let mut partner = open(&path);
        assert!(module.use_state_once("alice", &id, 1_000, 900).unwrap());
        assert!(!module.use_state_once("alice", &id, 1_000, 901).unwrap(), "twice in one process");
        assert!(!partner.use_state_once("alice", &id, 1_000, 902).unwrap(), "a second writer catches up first");
        assert!(partner.use_state_once("alice", &other, 2_000, 902).unwrap());
        // A restart reads them back; a compaction keeps the live ones and drops the expired.
        assert!(!open(&path).use_state_once("alice", &id, 1_000, 950).unwrap());
        let mut later = open(&path);
        assert!(later.use_state_once("bob", &[9u8; 16], 3_000, 1_500).unwrap());
        later.compact().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&"07".repeat(16)) && text.contains(&"08".repeat(16)), "{text}");
        let mut reopened = open(&path);
        assert!(!reopened.use_state_once("alice", &other, 2_000, 1_600).unwrap());
        assert!(reopened.use_state_once("alice", &id, 1_000, 1_600).is_ok(), "an expired id is no longer kept");
    }

    #[test]
    fn one_user_holds_a_bounded_number_of_answered_states_until_they_expire() {
        let dir = new_dir();
        let mut j = open(&dir.journal_path());
        let id = |n: u32| {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&n.to_be_bytes());
            id
        };
        for n in 0..super::MAX_ANSWERED_PER_USER {
            assert!(j.use_state_once("mallory", &id(n), 1_000 + u64::from(n % 2), 500).unwrap());
        }
        let full = j.use_state_once("mallory", &id(99_999), 1_000, 600).unwrap_err();
        assert!(full.to_string().contains("\"mallory\" already holds 1000 answered"), "{full}");
        assert!(j.use_state_once("alice", &id(99_999), 1_000, 600).unwrap(), "other users are not held back");
        // Half of them expire at 1000: room again, exactly then.
        assert!(j.use_state_once("mallory", &id(100_000), 2_000, 999).is_err());
        assert!(j.use_state_once("mallory", &id(100_000), 2_000, 1_000).unwrap());
        // A reload counts the same.
        assert!(open(&dir.journal_path()).use_state_once("mallory", &id(100_001), 2_000, 1_000).unwrap());
    }
}
