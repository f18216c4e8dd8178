//! The ids a [`super::Failover`] gives: `"{index}:{provider's id}"`, index 0
//! for the first provider, so that a push is always asked about where it was made.

use super::provider::PushError;

/// The id of the push `inner` made by provider `index`.
pub(super) fn tag(index: usize, inner: &str) -> String {
    format!("{index}:{inner}")
}

/// The provider of an id made by [`tag`] among `providers`, and its own id.
/// Any other id is refused: it was not made here, and reaches no provider.
pub(super) fn route(id: &str, providers: usize) -> Result<(usize, &str), PushError> {
    let unknown = || PushError::BadAnswer("the push id was not made by this module".to_owned());
    let (index, inner) = id.split_once(':').ok_or_else(unknown)?;
    let i: usize = index.parse().map_err(|_| unknown())?;
    if i.to_string() != index || i >= providers {
        return Err(unknown());
    }
    Ok((i, inner))
}

/// The provider (0: the primary) that made a push id of [`super::Failover`]; 0 for another id.
pub fn provider_of(id: &str) -> usize {
    id.split_once(':').and_then(|(index, _)| index.parse().ok()).unwrap_or(0)
}
