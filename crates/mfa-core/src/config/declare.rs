//! How a configuration item is declared: once, in a `section!` block, from which
//! follow the raw struct the checks read, its defaults, the FreeRADIUS
//! CONF_PARSER rows (built by the FFI from [`Item`]s), the generic checks (ranges,
//! lengths) and the list of items that the README and mods-available/mfa are
//! tested against.

use super::ConfigError;

/// What FreeRADIUS parses an item as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string (`char const *`); absent without a default.
    Text,
    /// An unsigned 32-bit number.
    Integer,
    /// `yes`/`no`.
    Boolean,
    /// A subsection `name { ... }` with items of its own.
    Section(&'static [Item]),
}

/// One configuration item (or subsection) as declared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    pub name: &'static str,
    pub kind: Kind,
    /// As written in a FreeRADIUS configuration file: `"5"`, `"yes"`,
    /// `"${modconfdir}/mfa/tokens.json"`; the server expands it.
    pub default: Option<&'static str>,
    /// Shown by `radiusd -X` only at debug level 3 and above (PW_TYPE_SECRET).
    pub secret: bool,
    /// Integers: the values accepted, inclusive, and their unit for the error.
    pub range: Option<(u32, u32, &'static str)>,
    /// Texts: the most bytes accepted, and why.
    pub max_len: Option<(usize, &'static str)>,
}

impl Item {
    pub const fn new(name: &'static str, kind: Kind, default: Option<&'static str>) -> Item {
        Item { name, kind, default, secret: false, range: None, max_len: None }
    }

    /// Flag: the value is a secret.
    pub const fn secret(mut self) -> Item {
        self.secret = true;
        self
    }

    /// Flag: an integer from `low` to `high` (`unit` names it in errors, may be empty).
    pub const fn range(mut self, low: u32, high: u32, unit: &'static str) -> Item {
        self.range = Some((low, high, unit));
        self
    }

    /// Flag: a text of at most `bytes` bytes.
    pub const fn max_len(mut self, bytes: usize, why: &'static str) -> Item {
        self.max_len = Some((bytes, why));
        self
    }
}

/// A parsed value, in the form FreeRADIUS hands it over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    Text(Option<String>),
    Integer(u32),
    Boolean(bool),
}

impl Value {
    /// The value an item has when the configuration does not set it.
    pub fn default_of(item: &Item) -> Value {
        match item.kind {
            Kind::Text => Value::Text(item.default.map(str::to_string)),
            Kind::Integer => Value::Integer(item.default.and_then(|d| parse_integer(d).ok()).unwrap_or(0)),
            Kind::Boolean => Value::Boolean(matches!(item.default, Some("yes" | "true" | "on"))),
            Kind::Section(_) => unreachable!("a section has no value of its own"),
        }
    }
}

/// An integer item's text, read strictly: decimal digits only (spaces around them
/// allowed). FreeRADIUS's own integer parsing (`strtoul` with no check) would take
/// `five` for 0, `7seconds` for 7 and `010` for 8, so a mistyped
/// `lockout.max_failures` would turn the lockout off without a word; the module
/// takes every integer item as text and reads it here instead.
pub fn parse_integer(text: &str) -> Result<u32, String> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("{text:?} is not a whole number"));
    }
    digits.parse().map_err(|_| format!("{digits} is too large"))
}

/// A Rust type an item's value is read into.
pub trait ItemValue: Sized {
    const KIND: Kind;
    fn from_value(value: Value) -> Self;
    fn to_value(&self) -> Value;
}

impl ItemValue for Option<String> {
    const KIND: Kind = Kind::Text;
    fn from_value(value: Value) -> Self {
        match value {
            Value::Text(text) => text,
            _ => None,
        }
    }
    fn to_value(&self) -> Value {
        Value::Text(self.clone())
    }
}

/// A text that always has a value (its item has a default): the messages.
impl ItemValue for String {
    const KIND: Kind = Kind::Text;
    fn from_value(value: Value) -> Self {
        Option::<String>::from_value(value).unwrap_or_default()
    }
    fn to_value(&self) -> Value {
        Value::Text(Some(self.clone()))
    }
}

impl ItemValue for u32 {
    const KIND: Kind = Kind::Integer;
    fn from_value(value: Value) -> Self {
        match value {
            Value::Integer(n) => n,
            _ => 0,
        }
    }
    fn to_value(&self) -> Value {
        Value::Integer(*self)
    }
}

impl ItemValue for bool {
    const KIND: Kind = Kind::Boolean;
    fn from_value(value: Value) -> Self {
        matches!(value, Value::Boolean(true))
    }
    fn to_value(&self) -> Value {
        Value::Boolean(*self)
    }
}

/// A struct of items declared with `section!`.
pub trait Section: Sized {
    /// Its items and subsections, in declaration order.
    const ITEMS: &'static [Item];
    /// Reads the values of [`Section::ITEMS`], depth first, in order.
    fn from_values(values: &mut dyn Iterator<Item = Value>) -> Self;
    /// The values, in the order `from_values` reads them.
    fn to_values(&self, out: &mut Vec<Value>);
}

/// The values of `items` when nothing is configured, depth first.
pub fn default_values(items: &[Item]) -> Vec<Value> {
    let mut out = Vec::new();
    for item in items {
        match item.kind {
            Kind::Section(sub) => out.extend(default_values(sub)),
            _ => out.push(Value::default_of(item)),
        }
    }
    out
}

/// Every item's path (`mode`, `push.timeout`), depth first, with the item.
pub fn paths(items: &'static [Item]) -> Vec<(String, &'static Item)> {
    fn walk(items: &'static [Item], prefix: &str, out: &mut Vec<(String, &'static Item)>) {
        for item in items {
            let path = if prefix.is_empty() { item.name.to_string() } else { format!("{prefix}.{}", item.name) };
            match item.kind {
                Kind::Section(sub) => walk(sub, &path, out),
                _ => out.push((path, item)),
            }
        }
    }
    let mut out = Vec::new();
    walk(items, "", &mut out);
    out
}

/// The checks every item declares (ranges, lengths), on a section's values;
/// errors name the item by its path.
pub fn check_declared<S: Section>(section: &S) -> Result<(), ConfigError> {
    let mut values = Vec::new();
    section.to_values(&mut values);
    for ((path, item), value) in paths(S::ITEMS).into_iter().zip(values) {
        match (value, item.range, item.max_len) {
            (Value::Integer(n), Some((low, high, unit)), _) if !(low..=high).contains(&n) => {
                let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
                return Err(ConfigError::new(path, format!("{n} is not within {low} to {high}{unit}")));
            }
            (Value::Text(Some(text)), _, Some((max, why))) if text.len() > max => {
                return Err(ConfigError::new(path, format!("longer than {max} bytes ({why})")));
            }
            _ => {}
        }
    }
    Ok(())
}

/// `section!` arms that pick an item's default: none, or the literal given.
#[doc(hidden)]
#[macro_export]
macro_rules! __item_default {
    () => {
        None
    };
    ($default:literal) => {
        Some($default)
    };
}

/// Declares a struct of configuration items, each once: its name (the field's),
/// its type (`Option<String>`, `String`, `u32`, `bool`), its default as written
/// in a FreeRADIUS file, and flags (`secret`, `range(low, high, unit)`,
/// `max_len(bytes, why)`); then its subsections (structs declared the same way)
/// and fields that are not items (filled by other means).
#[macro_export]
macro_rules! section {
    (
        $(#[$attr:meta])*
        pub struct $name:ident {
            $(
                $(#[doc = $doc:literal])*
                $field:ident : $ty:ty $(= $default:literal)? $([ $($flag:ident ($($arg:expr),*)),* ])?
            ),* $(,)?
        }
        $(sections {
            $( $(#[doc = $sdoc:literal])* $sfield:ident : $sty:ty ),* $(,)?
        })?
        $(other {
            $( $(#[doc = $odoc:literal])* $ofield:ident : $oty:ty ),* $(,)?
        })?
    ) => {
        $(#[$attr])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            $( $(#[doc = $doc])* pub $field: $ty, )*
            $($( $(#[doc = $sdoc])* pub $sfield: $sty, )*)?
            $($( $(#[doc = $odoc])* pub $ofield: $oty, )*)?
        }

        impl $crate::config::declare::Section for $name {
            const ITEMS: &'static [$crate::config::declare::Item] = &[
                $({
                    #[allow(unused_mut)]
                    let mut item = $crate::config::declare::Item::new(
                        stringify!($field),
                        <$ty as $crate::config::declare::ItemValue>::KIND,
                        $crate::__item_default!($($default)?),
                    );
                    $($( item = item.$flag($($arg),*); )*)?
                    item
                },)*
                $($(
                    $crate::config::declare::Item::new(
                        stringify!($sfield),
                        $crate::config::declare::Kind::Section(
                            <$sty as $crate::config::declare::Section>::ITEMS,
                        ),
                        None,
                    ),
                )*)?
            ];

            fn from_values(values: &mut dyn Iterator<Item = $crate::config::declare::Value>) -> Self {
                #[allow(unused_imports)]
                use $crate::config::declare::{ItemValue, Section};
                $( let $field = <$ty>::from_value(values.next().expect("a value for every item")); )*
                $($( let $sfield = <$sty>::from_values(values); )*)?
                $name {
                    $( $field, )*
                    $($( $sfield, )*)?
                    $($( $ofield: Default::default(), )*)?
                }
            }

            fn to_values(&self, out: &mut Vec<$crate::config::declare::Value>) {
                #[allow(unused_imports)]
                use $crate::config::declare::{ItemValue, Section};
                $( out.push(self.$field.to_value()); )*
                $($( self.$sfield.to_values(out); )*)?
            }
        }

        /// Every item at its declared default: what an empty section gives.
        impl Default for $name {
            fn default() -> Self {
                use $crate::config::declare::{default_values, Section};
                Self::from_values(&mut default_values(Self::ITEMS).into_iter())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    crate::section! {
        /// A subsection.
        pub struct Inner {
            url: Option<String> [secret()],
            timeout: u32 = "5" [range(1, 30, "seconds")],
        }
    }

    crate::section! {
        pub struct Outer {
            /// A word.
            mode: Option<String> = "otp",
            strip: bool = "yes",
            greeting: String = "hello" [max_len(8, "short")],
        }
        sections { inner: Inner }
        other { extra: Vec<u8> }
    }

    #[test]
    fn defaults_follow_the_declaration() {
        let outer = Outer::default();
        assert_eq!(outer.mode.as_deref(), Some("otp"));
        assert!(outer.strip);
        assert_eq!(outer.greeting, "hello");
        assert_eq!(outer.inner, Inner { url: None, timeout: 5 });
        assert!(outer.extra.is_empty());
    }

    #[test]
    fn paths_and_flags() {
        let paths: Vec<String> = paths(Outer::ITEMS).into_iter().map(|(p, _)| p).collect();
        assert_eq!(paths, ["mode", "strip", "greeting", "inner.url", "inner.timeout"]);
        let url = &Inner::ITEMS[0];
        assert!(url.secret && url.kind == Kind::Text && url.default.is_none());
        assert_eq!(Inner::ITEMS[1].range, Some((1, 30, "seconds")));
    }

    #[test]
    fn values_round_trip() {
        let mut outer = Outer { mode: None, ..Outer::default() };
        outer.inner.timeout = 9;
        let mut values = Vec::new();
        outer.to_values(&mut values);
        assert_eq!(Outer::from_values(&mut values.into_iter()), outer);
    }

    #[test]
    fn declared_checks_name_the_path() {
        let mut outer = Outer::default();
        assert_eq!(check_declared(&outer), Ok(()));
        outer.inner.timeout = 31;
        let err = check_declared(&outer).unwrap_err();
        assert_eq!(err.item, "inner.timeout");
        assert_eq!(err.message, "31 is not within 1 to 30 seconds");
        let outer = Outer { greeting: "too long by far".into(), ..Outer::default() };
        assert_eq!(check_declared(&outer).unwrap_err().item, "greeting");
    }

    #[test]
    fn integers_are_read_strictly() {
        assert_eq!(parse_integer("5"), Ok(5));
        assert_eq!(parse_integer(" 30 "), Ok(30));
        assert_eq!(parse_integer("010"), Ok(10), "decimal, not octal");
        assert_eq!(parse_integer("4294967295"), Ok(u32::MAX));
        assert_eq!(parse_integer("4294967296").unwrap_err(), "4294967296 is too large");
        assert_eq!(parse_integer("five").unwrap_err(), "\"five\" is not a whole number");
        for bad in ["", " ", "7seconds", "0x5", "+5", "-1", "1.5", "1 000"] {
            assert!(parse_integer(bad).is_err(), "{bad:?}");
        }
    }
}
