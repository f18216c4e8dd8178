//! Who the user is: user names and realms, and the user map.

pub mod case;
pub mod realm;
pub mod usermap;
