//! What the module keeps on disk: the token file, the state journal, and files
//! reloaded when they change; and the one way all of them are rewritten.

pub mod atomic;
pub mod call_budget;
pub mod journal;
pub mod redis;
pub mod reload;
pub mod state_store;
pub mod tokens;
