//! Text: cut to fit a RADIUS attribute (253 bytes) or a log line, `{name}`
//! templates, and masked destinations.

pub mod mask;
pub mod template;
pub mod url;

/// At most `max` bytes of `text`, cut at a character boundary.
pub fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `text` without control characters, cut to `max` bytes: fit for a log line.
pub fn printable(text: &str, max: usize) -> String {
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    cut(&clean, max).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_whole_characters() {
        assert_eq!(cut("aé", 2), "a");
        assert_eq!(cut("abc", 5), "abc");
        assert_eq!(printable("a\nb", 10), "a b");
    }
}
