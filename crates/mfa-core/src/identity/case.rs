//! `ignore_case`: the one rule by which the module and mfa-admin compare a
//! user name with the token file, and the name a user's state is kept under.
//!
//! With `ignore_case = yes` a name is folded to lower case (Unicode's simple
//! lower case, as str::to_lowercase): the token file is read under folded
//! names, a request's name is folded before the lookup, and the state journal
//! keys the user by the folded name. mfa-admin, given `--ignore-case`, folds the
//! names it is given and keys state the same way, so that `unlock Alice` lifts
//! the lockout the module keeps for "ALICE".

use std::borrow::Cow;

/// The folded form of `name`: what two names equal without case share.
pub fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// The name the token file is searched for, and the user's state kept under.
pub fn key(name: &str, ignore_case: bool) -> Cow<'_, str> {
    if ignore_case {
        Cow::Owned(fold(name))
    } else {
        Cow::Borrowed(name)
    }
}

/// Whether `a` and `b` name the same user.
pub fn same(a: &str, b: &str, ignore_case: bool) -> bool {
    key(a, ignore_case) == key(b, ignore_case)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_is_lower_case_and_only_with_ignore_case() {
        assert_eq!(key("ALICE", true), "alice");
        assert_eq!(key("ÄRGER", true), "ärger");
        assert_eq!(key("ALICE", false), "ALICE");
        assert!(same("Alice", "aLICE", true));
        assert!(!same("Alice", "aLICE", false));
    }
}
