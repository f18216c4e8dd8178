//! A panic must never unwind into FreeRADIUS's C frames (undefined behaviour,
//! and a dead server). Every callback runs inside [`guarded`], which catches it,
//! logs where it happened, and returns a failure code.

use std::any::Any;
use std::cell::RefCell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Where the last panic on this thread happened, filled by the hook.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Replaces the default hook (which writes to a stderr that a daemon has closed)
/// with one that keeps the location for the log line written by [`guarded`].
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        panic::set_hook(Box::new(|info| {
            let location = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "unknown location".into());
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(location));
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
