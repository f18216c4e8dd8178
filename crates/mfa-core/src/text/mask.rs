//! Masked destinations for prompts such as "Code sent to +45 **** **12": enough
//! for the user to recognise their phone or mailbox, too little to learn it.

/// Numbers with fewer digits than this are masked but for their last two digits.
const SHORT: usize = 6;

/// Masks a phone number: a leading '+' and the two digits after it (the country
/// code, or the first two digits of a number without '+') and the last two
/// digits stay; the rest is masked and grouped by four from the right.
///
/// Only ASCII digits and a '+' before them are kept; spaces, dashes and any
/// other characters are dropped, so the result shows nothing but digits.
pub fn mask_phone(number: &str) -> String {
    // The '+' counts when it comes before the first digit, whatever precedes it.
    let plus = number.chars().find(|c| *c == '+' || c.is_ascii_digit()) == Some('+');
    let digits: Vec<char> = number.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len();
    let mut out = String::new();
    if plus {
        out.push('+');
    }
    if n == 0 {
        out.push_str("***");
        return out;
    }
    if n < SHORT {
        // Two digits kept of two would be the whole number.
        let kept = if n > 2 { 2 } else { 0 };
        out.extend(std::iter::repeat_n('*', n - kept));
        out.extend(&digits[n - kept..]);
        return out;
    }
    out.extend(&digits[..2]);
    // Everything after the first two: masked, then the last two as they are.
    let rest: Vec<char> = std::iter::repeat_n('*', n - 4).chain(digits[n - 2..].iter().copied()).collect();
    // Grouped from the right so that the last group always ends in the kept digits.
    let first = match rest.len() % 4 {
        0 => 4,
        r => r,
    };
    let mut start = 0;
    let mut end = first;
    while start < rest.len() {
        out.push(' ');
        out.extend(&rest[start..end]);
        start = end;
        end += 4;
    }
    out
}

/// Masks an e-mail address: "john@example.com" becomes "j***@example.com".
/// The local part's first character stays, the domain stays; an address
/// without '@' becomes "***".
pub fn mask_email(address: &str) -> String {
    let address = address.trim();
    // Split at the last '@': a quoted local part may hold one, a domain never does.
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let mut out = String::new();
            if let Some(first) = local.chars().next() {
                out.push(first);
            }
            out.push_str("***@");
            out.push_str(domain);
            out
        }
        None => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_with_country_code() {
        assert_eq!(mask_phone("+4512345612"), "+45 **** **12");
        assert_eq!(mask_phone("+45 12 34 56 12"), "+45 **** **12");
        assert_eq!(mask_phone("+45-1234-5612"), "+45 **** **12");
        assert_eq!(mask_phone("  +4512345612 "), "+45 **** **12");
        assert_eq!(mask_phone("+447911123456"), "+44 ** **** **56");
        assert_eq!(mask_phone("+12025550123"), "+12 * **** **23");
    }

    #[test]
    fn phone_with_00_or_without_prefix() {
        assert_eq!(mask_phone("004512345612"), "00 ** **** **12");
        assert_eq!(mask_phone("12345612"), "12 ** **12");
        assert_eq!(mask_phone("(555) 123-4567"), "55 **** **67");
        assert_eq!(mask_phone("123456"), "12 **56");
    }

    #[test]
    fn every_middle_digit_is_hidden() {
        let masked = mask_phone("+11 98765432");
        assert_eq!(masked, "+11 **** **32");
        for d in ["9", "8", "7", "6", "5", "4"] {
            assert!(!masked.contains(d), "{masked}");
        }
    }

    #[test]
    fn short_numbers() {
        assert_eq!(mask_phone("12345"), "***45");
        assert_eq!(mask_phone("+12345"), "+***45");
        assert_eq!(mask_phone("112"), "*12");
        assert_eq!(mask_phone("12"), "**");
        assert_eq!(mask_phone("7"), "*");
        assert_eq!(mask_phone(""), "***");
        assert_eq!(mask_phone("+"), "+***");
        assert_eq!(mask_phone("- -"), "***");
    }

    #[test]
    fn phone_drops_other_characters() {
        assert_eq!(mask_phone("+45 1234 ext. 5612"), "+45 **** **12");
        // Non-ASCII digits and letters are dropped, multibyte text does not panic.
        assert_eq!(mask_phone("☎ +45 ١٢ 12345612"), "+45 **** **12");
        assert_eq!(mask_phone("ø+4512345612"), "+45 **** **12");
        assert_eq!(mask_phone("45+12345612"), "45 **** **12");
        assert_eq!(mask_phone("€€€"), "***");
    }

    #[test]
    fn email() {
        assert_eq!(mask_email("john@example.com"), "j***@example.com");
        assert_eq!(mask_email(" j@example.com\n"), "j***@example.com");
        assert_eq!(mask_email("@example.com"), "***@example.com");
        assert_eq!(mask_email("john@"), "j***@");
        assert_eq!(mask_email("\"a@b\"@example.com"), "\"***@example.com");
        assert_eq!(mask_email("john.example.com"), "***");
        assert_eq!(mask_email(""), "***");
    }

    #[test]
    fn email_multibyte() {
        assert_eq!(mask_email("ødegård@example.dk"), "ø***@example.dk");
        assert_eq!(mask_email("😀x@例え.jp"), "😀***@例え.jp");
        assert_eq!(mask_email("é"), "***");
    }
}
