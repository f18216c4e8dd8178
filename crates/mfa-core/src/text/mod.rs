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

/// `lines` as Reply-Messages: joined by newlines into as few attributes of at
/// most `max` bytes as they fit in, never splitting a line (one longer than
/// `max` is cut). A NAS that shows only the first Reply-Message then shows a
/// whole menu, not just its heading.
pub fn join_lines(lines: &[String], max: usize) -> Vec<String> {
    let mut out: Vec<String> = vec![];
    for line in lines {
        let line = cut(line, max);
        match out.last_mut() {
            Some(last) if last.len() + 1 + line.len() <= max => {
                last.push('\n');
                last.push_str(line);
            }
            _ => out.push(line.to_string()),
        }
    }
    out
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

    #[test]
    fn lines_are_joined_into_as_few_messages_as_fit() {
        let lines: Vec<String> = ["Choose:", "1. App", "2. SMS", "Enter 1 to 2:"].map(String::from).to_vec();
        assert_eq!(join_lines(&lines, 253), vec!["Choose:\n1. App\n2. SMS\nEnter 1 to 2:"]);
        assert_eq!(join_lines(&lines, 14), vec!["Choose:\n1. App", "2. SMS", "Enter 1 to 2:"]);
        assert_eq!(join_lines(&["x".repeat(300)], 253), vec!["x".repeat(253)]);
        assert!(join_lines(&[], 253).is_empty());
    }
}
