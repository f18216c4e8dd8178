//! `{name}` placeholders in the gateway's request body (and in messages).
//!
//! One pass over the template: a value is inserted as given and never scanned
//! again, so a user name such as `{message}` cannot pull the code into another
//! field. Unknown `{...}` stay as written, which lets a JSON template keep its
//! own braces; `{{` and `}}` are literal braces.

/// Replaces each `{name}` whose name is in `values` by its value.
pub fn render(template: &str, values: &[(&str, &str)]) -> String {
    render_with(template, values, |out, value| out.push_str(value))
}

/// Whether `template` inserts `{name}` somewhere: `{{name}}` is a literal text,
/// not a placeholder, so a plain search for `{name}` would be fooled by it.
pub fn inserts(template: &str, name: &str) -> bool {
    render(template, &[(name, "")]) != render(template, &[(name, "x")])
}

/// Like [`render`], but each value is JSON-string-escaped (without the quotes:
/// the template writes `"to": "{destination}"`), and the result must be JSON.
///
/// The error never shows the result or a value: the message may hold a code.
pub fn render_json(template: &str, values: &[(&str, &str)]) -> Result<String, String> {
    let body = render_with(template, values, push_json_escaped);
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(_) => Ok(body),
        Err(e) => {
            // serde_json's own message is not used: its wording is for
            // programmers, and a later version could quote the input.
            let what = match e.classify() {
                serde_json::error::Category::Eof => "it ends too early",
                serde_json::error::Category::Syntax => "syntax error",
                serde_json::error::Category::Data | serde_json::error::Category::Io => "invalid data",
            };
            let mut text = format!(
                "the template does not give valid JSON ({what} at line {}, column {} of the result)",
                e.line(),
                e.column()
            );
            if template.contains("{{") || template.contains("}}") {
                // The usual trap: a nested JSON object ends in "}}", which is one literal brace.
                text.push_str("; note that {{ and }} stand for one brace each");
            }
            Err(text)
        }
    }
}

/// Like [`render`], but each value is percent-encoded for an
/// `application/x-www-form-urlencoded` body (the template writes
/// `To={destination}&Body={message}`), and the result must be such a body:
/// `name=value` pairs joined by `&`, in printable ASCII without spaces or
/// braces, each `%` starting an escape (a literal `+` stands for a space there:
/// write `%2B` for a plus sign).
///
/// The error never shows the result or a value: the message may hold a code.
pub fn render_form(template: &str, values: &[(&str, &str)]) -> Result<String, String> {
    let body = render_with(template, values, |out, value| {
        out.extend(percent_encoding::utf8_percent_encode(value, FORM_VALUE));
    });
    check_form(&body).map(|()| body)
}

/// What a form value leaves as it is: letters, digits and `-._*`, as the
/// WHATWG's form encoder does; a space becomes `%20`, which servers read as `+`.
const FORM_VALUE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'*');

fn check_form(body: &str) -> Result<(), String> {
    let bad = |what: &str, at: usize| Err(format!("the template does not give a form body ({what} at byte {at})"));
    if body.is_empty() {
        return Err("the template gives an empty form body".into());
    }
    let bytes = body.as_bytes();
    for (at, &b) in bytes.iter().enumerate() {
        let allowed = b.is_ascii_graphic() && !b"{}\"#<>\\^`|[]".contains(&b);
        if !allowed {
            return bad("a character not allowed in a form body (write it %-escaped)", at + 1);
        }
        if b == b'%' && !(bytes.get(at + 1..at + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))) {
            return bad("a % without two hex digits after it", at + 1);
        }
    }
    let mut at = 1;
    for pair in body.split('&') {
        match pair.split_once('=') {
            Some((name, _)) if !name.is_empty() => {}
            _ => return bad("a field that is not name=value", at),
        }
        at += pair.len() + 1;
    }
    Ok(())
}

fn render_with(template: &str, values: &[(&str, &str)], insert: impl Fn(&mut String, &str)) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    // Every index below comes from find() of an ASCII brace, so slicing stays on
    // character boundaries.
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if let Some(inner) = tail.strip_prefix('{') {
            // A placeholder runs to the next '}' and holds no other brace.
            match inner.find(['{', '}']) {
                Some(end) if inner[end..].starts_with('}') => {
                    let name = &inner[..end];
                    match values.iter().find(|(n, _)| *n == name) {
                        Some((_, value)) => insert(&mut out, value),
                        None => {
                            out.push('{');
                            out.push_str(name);
                            out.push('}');
                        }
                    }
                    rest = &inner[end + 1..];
                }
                _ => {
                    out.push('{');
                    rest = inner;
                }
            }
        } else {
            // A lone '}'.
            out.push('}');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

fn push_json_escaped(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Other control characters, and the two separators that JavaScript
            // (unlike JSON) does not allow raw in strings.
            c if c < ' ' || c == '\u{2028}' || c == '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &[(&str, &str)] = &[("user", "alice"), ("message", "Code: 123456"), ("destination", "+4512345612")];

    #[test]
    fn a_literal_brace_pair_is_not_a_placeholder() {
        assert!(inserts("Code: {code}", "code"));
        assert!(inserts("{{{code}}}", "code"), "braces around a placeholder");
        assert!(!inserts("Code: {{code}}", "code"));
        assert!(!inserts("Code: {coder}", "code"));
    }

    #[test]
    fn form_encodes_values() {
        let v = [("destination", "+4512345612"), ("message", "Code: 123 456 & more=x\u{e9}"), ("user", "a{b}")];
        let body = render_form("To={destination}&From=%2B4500000000&Body={message}&Ref={user}", &v).unwrap();
        assert_eq!(
            body,
            "To=%2B4512345612&From=%2B4500000000&Body=Code%3A%20123%20456%20%26%20more%3Dx%C3%A9&Ref=a%7Bb%7D"
        );
    }

    #[test]
    fn form_templates_that_give_no_form_body_are_refused() {
        let v = [("message", "123456")];
        for template in
            ["", "Body {message}", "Body={message}&{nope}", "={message}", "a=1&&b={message}", "a=%zz{message}"]
        {
            let e = render_form(template, &v).unwrap_err();
            assert!(e.contains("form body") && !e.contains("123456"), "{template}: {e}");
        }
        assert!(render_form("Body={message}&Flag=&Empty=", &v).is_ok());
    }

    #[test]
    fn replaces_known_names() {
        assert_eq!(render("{user} got {message}", V), "alice got Code: 123456");
        assert_eq!(render("{user}{user}", V), "alicealice");
        assert_eq!(render("", V), "");
        assert_eq!(render("no placeholders", V), "no placeholders");
    }

    #[test]
    fn unknown_and_broken_placeholders_stay() {
        assert_eq!(render("{nope} {user}", V), "{nope} alice");
        assert_eq!(render("{}", V), "{}");
        assert_eq!(render("{user", V), "{user");
        assert_eq!(render("user}", V), "user}");
        assert_eq!(render("{a{user}", V), "{aalice");
        assert_eq!(render("{ user }", V), "{ user }");
        assert_eq!(render("{USER}", V), "{USER}");
    }

    #[test]
    fn doubled_braces_are_literal() {
        assert_eq!(render("{{user}}", V), "{user}");
        assert_eq!(render("{{{user}}}", V), "{alice}");
        assert_eq!(render("a}}b{{c", V), "a}b{c");
    }

    #[test]
    fn values_are_not_scanned_again() {
        let v = [("user", "{message}"), ("message", "123456")];
        assert_eq!(render("{user}", &v), "{message}");
        let v = [("user", "{{x}}")];
        assert_eq!(render("{user}", &v), "{{x}}");
    }

    #[test]
    fn multibyte_text_and_names() {
        let v = [("nøgle", "værdi"), ("user", "jérôme")];
        assert_eq!(render("ø{nøgle}å {user}€{", &v), "øværdiå jérôme€{");
        assert_eq!(render("{€}", &v), "{€}");
    }

    #[test]
    fn json_escapes_values() {
        let t = r#"{"to": "{destination}", "text": "{message}", "user": "{user}"}"#;
        let v = [("destination", "+45 \"12\""), ("message", "line1\nline2\t\\ \u{1} \u{2028}"), ("user", "a/b ø")];
        let body = render_json(t, &v).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(parsed["to"], "+45 \"12\"");
        assert_eq!(parsed["text"], "line1\nline2\t\\ \u{1} \u{2028}");
        assert_eq!(parsed["user"], "a/b ø");
        assert!(!body.contains('\n') && !body.contains('\u{2028}'));
    }

    #[test]
    fn json_cannot_be_broken_out_of() {
        let t = r#"{"user": "{user}", "text": "{message}"}"#;
        let v = [("user", r#"x", "text": "evil"#), ("message", "ok")];
        let parsed: serde_json::Value = serde_json::from_str(&render_json(t, &v).unwrap()).unwrap();
        assert_eq!(parsed["user"], r#"x", "text": "evil"#);
        assert_eq!(parsed["text"], "ok");
    }

    #[test]
    fn json_nested_objects_need_doubled_closing_braces() {
        let good = r#"{"sms": {"to": "{destination}"}}}}"#;
        let parsed: serde_json::Value = serde_json::from_str(&render_json(good, V).unwrap()).unwrap();
        assert_eq!(parsed["sms"]["to"], "+4512345612");

        let err = render_json(r#"{"sms": {"to": "{destination}"}}"#, V).unwrap_err();
        assert!(err.contains("does not give valid JSON"), "{err}");
        assert!(err.contains("{{ and }}"), "{err}");
    }

    #[test]
    fn json_error_does_not_show_values() {
        // Unquoted placeholder: the code ends up outside a string.
        let err = render_json(r#"{"text": {message}}"#, V).unwrap_err();
        assert!(err.contains("does not give valid JSON"), "{err}");
        assert!(!err.contains("123456") && !err.contains("Code"), "{err}");
        let err = render_json(r#"{"text": "{message}""#, V).unwrap_err();
        assert!(err.contains("ends too early"), "{err}");
        assert!(!err.contains("123456"), "{err}");
        assert!(render_json("", V).is_err());
        assert!(render_json(r#"{"a": 1} x"#, V).is_err());
    }

    #[test]
    fn json_accepts_any_json_value() {
        assert_eq!(render_json(r#"["{user}", 1]"#, V).unwrap(), r#"["alice", 1]"#);
        assert_eq!(render_json(r#""{message}""#, V).unwrap(), r#""Code: 123456""#);
    }
}
