//! What the module warns about when it starts (and the FFI layer logs then):
//! a configuration that works but weakens the module.

use super::Backend;

impl Backend {
    /// One line per warning; none quotes a secret.
    pub fn startup_warnings(&self) -> Vec<String> {
        self.config().warnings()
    }
}
