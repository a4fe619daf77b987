//! What hbd keeps of the texts a heartbeat carries (reading keys, units, messages, text
//! values, thresholds): the wire format allows any UTF-8 up to 65,535 bytes, but nothing
//! that reaches a page, a mail, a chat message or the API may carry terminal escapes,
//! NUL, bare carriage returns or bidirectional overrides, nor be longer than
//! docs/protocol.md says. The decision, per field:
//!
//! - **keys** must be printable (no control or bidi-control character): a reading whose
//!   key is not is *refused* (skipped and counted as `bad_key`), since a key is an
//!   identity that thresholds, routes and charts match on, and a cleaned key would be a
//!   different one;
//! - **texts** (messages, text values, units, thresholds) are *cleaned*: every control
//!   character but newline and tab, and every bidi control, becomes U+FFFD, and the text
//!   is cut at [`MAX_TEXT`] bytes (at a character boundary, ending in `…`).

use std::borrow::Cow;

/// The longest text hbd keeps, in bytes (docs/protocol.md).
pub const MAX_TEXT: usize = hb_proto::MAX_TEXT;

/// Explicit bidirectional formatting characters (Unicode's Bidi_Control set without the
/// harmless marks): they reorder what a reader sees (U+202E turns `gpj.exe` around).
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn hostile(c: char, allow_newline: bool) -> bool {
    (c.is_control() && !(allow_newline && matches!(c, '\n' | '\t'))) || is_bidi_control(c)
}

/// Whether `key` may name a reading: no control or bidi-control character.
pub fn valid_key(key: &str) -> bool {
    !key.chars().any(|c| hostile(c, false))
}

/// `text` as hbd keeps it (see the module doc); borrowed when it is already clean.
pub fn clean(text: &str) -> Cow<'_, str> {
    clean_with(text, true, MAX_TEXT)
}

/// [`clean`] for one-line fields (units, thresholds): newlines and tabs go too.
pub fn clean_line(text: &str) -> Cow<'_, str> {
    clean_with(text, false, MAX_TEXT)
}

fn clean_with(text: &str, allow_newline: bool, max: usize) -> Cow<'_, str> {
    let bad = text.chars().any(|c| hostile(c, allow_newline));
    if !bad && text.len() <= max {
        return Cow::Borrowed(text);
    }
    const ELLIPSIS: &str = "…";
    const REPLACEMENT: char = '\u{FFFD}';
    let mut out = String::with_capacity(text.len().min(max));
    for c in text.chars() {
        let c = if hostile(c, allow_newline) {
            REPLACEMENT
        } else {
            c
        };
        if out.len() + c.len_utf8() > max {
            while out.len() + ELLIPSIS.len() > max {
                out.pop();
            }
            out.push_str(ELLIPSIS);
            break;
        }
        out.push(c);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_texts_are_borrowed() {
        assert!(matches!(
            clean("load 0.5\nsecond line\t!"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(clean("ünïcödé ✓"), Cow::Borrowed(_)));
    }

    #[test]
    fn hostile_characters_are_replaced() {
        let t = "a\0b\x1b[31mc\x07d\re\u{202E}gpj.exe\u{2066}";
        let c = clean(t);
        assert_eq!(
            c,
            "a\u{FFFD}b\u{FFFD}[31mc\u{FFFD}d\u{FFFD}e\u{FFFD}gpj.exe\u{FFFD}"
        );
        assert_eq!(clean_line("a\nb"), "a\u{FFFD}b");
        assert!(!valid_key("cpu.\u{1b}x"));
        assert!(!valid_key("fs.\u{202E}x"));
        assert!(valid_key("fs./var lib.used_percent"));
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        let t = "é".repeat(20_000); // 40,000 bytes
        let c = clean(&t);
        assert!(c.len() <= MAX_TEXT, "{}", c.len());
        assert!(c.ends_with('…'));
        assert!(c.len() > MAX_TEXT - 4);
        let exact = "x".repeat(MAX_TEXT);
        assert_eq!(clean(&exact), exact.as_str());
    }
}
