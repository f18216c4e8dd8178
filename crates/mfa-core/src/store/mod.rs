//! What the module keeps on disk: the token file, the state journal, and files
//! reloaded when they change.

pub mod journal;
pub mod reload;
pub mod tokens;
