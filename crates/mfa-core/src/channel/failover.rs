//! Several servers for one service, asked in order: a server that fails is
//! passed over for a while, so that a dead primary does not cost every call a
//! timeout, and any answer from it ends that. The push providers (primary,
//! secondary) and privacyIDEA's servers share this; what counts as a failure
//! and what is made of the answers is theirs.

use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Whom to ask when every server is being passed over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WhenAllSkipped {
    /// The one whose pause ends first (the first of equals): one call's cost at most.
    SoonestBack,
    /// All of them, in order, as if none were passed over.
    All,
}

/// Which servers are passed over, and until when.
pub struct Health {
    skip_for: Duration,
    when_all_skipped: WhenAllSkipped,
    /// Per server: passed over until then, if it failed lately.
    until: Mutex<Vec<Option<Instant>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("servers", &self.lock().len())
            .field("skip_for", &self.skip_for)
            .field("when_all_skipped", &self.when_all_skipped)
            .finish()
    }
}

/// What asking the servers in turn gave.
#[derive(Debug)]
pub struct Asked<T, F> {
    /// The server that answered, and its answer; None when each one asked failed.
    pub answer: Option<(usize, T)>,
    /// The failures on the way, in the order asked, with each server's index.
    pub failures: Vec<(usize, F)>,
}

impl Health {
    /// `servers` servers, none passed over yet; a failing one is passed over for `skip_for`.
    pub fn new(servers: usize, skip_for: Duration, when_all_skipped: WhenAllSkipped) -> Health {
        Health { skip_for, when_all_skipped, until: Mutex::new(vec![None; servers]) }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Option<Instant>>> {
        // The vector stays consistent whatever panicked while it was held.
        self.until.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The servers to ask now, in order: those not passed over; when all are,
    /// as `when_all_skipped` says. Never empty unless there is no server.
    pub fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let until = self.lock();
        let ready: Vec<usize> = (0..until.len()).filter(|&i| until[i].is_none_or(|end| end <= now)).collect();
        if !ready.is_empty() {
            return ready;
        }
        match self.when_all_skipped {
            WhenAllSkipped::SoonestBack => (0..until.len()).min_by_key(|&i| until[i]).into_iter().collect(),
            WhenAllSkipped::All => (0..until.len()).collect(),
        }
    }

    /// Notes how a call to server `index` went: a failure passes it over for
    /// `skip_for` from now; an answer, whatever it says, ends that.
    pub fn note(&self, index: usize, failed: bool) {
        let until = if failed { Instant::now().checked_add(self.skip_for) } else { None };
        if let Some(slot) = self.lock().get_mut(index) {
            *slot = until;
        }
    }

    /// Asks the servers of [`Health::order`] in turn until one answers: `call`
    /// gives the server's answer (which may be a refusal), or its failure,
    /// which is noted and the next one asked.
    pub fn first_answer<T, F>(&self, mut call: impl FnMut(usize) -> Result<T, F>) -> Asked<T, F> {
        let mut failures = Vec::new();
        for index in self.order() {
            match call(index) {
                Ok(answer) => {
                    self.note(index, false);
                    return Asked { answer: Some((index, answer)), failures };
                }
                Err(failure) => {
                    self.note(index, true);
                    failures.push((index, failure));
                }
            }
        }
        Asked { answer: None, failures }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: Duration = Duration::from_secs(60);

    /// Asks with `up[i]` telling whether server i answers; gives who was asked and who answered.
    fn ask(health: &Health, up: &[bool]) -> (Vec<usize>, Option<usize>) {
        let mut asked = Vec::new();
        let result = health.first_answer(|i| {
            asked.push(i);
            if up[i] {
                Ok(i)
            } else {
                Err("down")
            }
        });
        assert_eq!(result.failures.iter().map(|(i, _)| *i).collect::<Vec<_>>(), asked[..result.failures.len()]);
        (asked, result.answer.map(|(i, _)| i))
    }

    #[test]
    fn a_failing_server_is_passed_over_then_tried_again() {
        let h = Health::new(2, Duration::from_millis(100), WhenAllSkipped::SoonestBack);
        assert_eq!(ask(&h, &[false, true]), (vec![0, 1], Some(1)));
        assert_eq!(ask(&h, &[true, true]), (vec![1], Some(1)));
        std::thread::sleep(Duration::from_millis(150));
        assert_eq!(ask(&h, &[true, true]), (vec![0], Some(0)));
    }

    #[test]
    fn when_all_are_passed_over() {
        let h = Health::new(3, LONG, WhenAllSkipped::SoonestBack);
        assert_eq!(ask(&h, &[false, false, false]), (vec![0, 1, 2], None));
        // The first to fail is the first back.
        assert_eq!(ask(&h, &[false, false, false]), (vec![0], None));
        assert_eq!(ask(&h, &[false, false, false]), (vec![1], None));

        let h = Health::new(3, LONG, WhenAllSkipped::All);
        assert_eq!(ask(&h, &[false, false, false]), (vec![0, 1, 2], None));
        assert_eq!(ask(&h, &[false, true, false]), (vec![0, 1], Some(1)));
        assert_eq!(ask(&h, &[false, true, false]), (vec![1], Some(1)));
    }

    #[test]
    fn notes_from_elsewhere_count() {
        let h = Health::new(2, LONG, WhenAllSkipped::All);
        h.note(0, true);
        assert_eq!(h.order(), [1]);
        h.note(0, false);
        h.note(7, true); // no such server: nothing to note
        assert_eq!(h.order(), [0, 1]);
        assert!(Health::new(0, LONG, WhenAllSkipped::SoonestBack).order().is_empty());
    }
}
