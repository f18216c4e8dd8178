//! The `reply <Attribute> { from, match, value, prefix, suffix }` sections, as
//! written; repeated and named by their attribute, so the FFI reads them from
//! the configuration tree rather than through the item table. The backends
//! compile and apply them (`backend::mapping`).

/// The items of one `reply <attribute> { }` section, as written.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawRule {
    pub attribute: String,
    pub from: Option<String>,
    pub pattern: Option<String>,
    pub value: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
}
