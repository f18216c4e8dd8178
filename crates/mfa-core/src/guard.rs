//! A panic must never unwind into FreeRADIUS's C frames (undefined behaviour,
//! and a dead server). Every FFI callback runs inside [`guarded`], which catches
//! it, reports where it happened, and returns a failure code. Plain Rust, so that
//! it is unit-tested without FreeRADIUS.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Where the last panic on this thread happened, filled by the hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Adds to the panic hook: keep the location for the report written by [`guarded`]
/// (a daemon's stderr, where the previous hook writes, is usually closed).
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "unknown location".into());
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(location));
            previous(info);
        }));
    });
}

fn describe(payload: &(dyn Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".into());
    let location = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
    format!("{message} at {location}")
}

/// Runs `body`; on a panic, reports it through `report` and returns `failed`.
pub fn guarded<T>(failed: T, report: impl FnOnce(&str), body: impl FnOnce() -> T) -> T {
    match panic::catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value,
        Err(payload) => {
            let text = describe(payload.as_ref());
            // The report itself must not unwind either.
            let _ = panic::catch_unwind(AssertUnwindSafe(|| report(&text)));
            failed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_the_failure_value_and_is_reported_with_its_location() {
        install_panic_hook();
        let mut reported = String::new();
        let value = guarded(-1, |text| reported = text.to_string(), || -> i32 { panic!("boom {}", 7) });
        assert_eq!(value, -1);
        assert!(reported.starts_with("boom 7 at "), "{reported}");
        assert!(reported.contains("guard.rs:"), "{reported}");
    }

    #[test]
    fn no_panic_passes_the_value_through() {
        let value = guarded(-1, |_| panic!("not called"), || 3);
        assert_eq!(value, 3);
    }

    #[test]
    fn a_panicking_report_does_not_escape() {
        install_panic_hook();
        let value = guarded(0u8, |_| panic!("report fails too"), || -> u8 { panic!("first") });
        assert_eq!(value, 0);
    }
}
