//! Cutting text to API size limits without splitting a character.

/// Longest message the operator writes (`status.message`, history entries, a step's `message`): Job and API
/// messages can be long, and each copy counts against the object's size limit.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Appended to text cut to a limit.
pub const CUT_MARKER: &str = "…[truncated]";

/// `text` cut to [`MAX_MESSAGE_BYTES`] (on a character boundary), with [`CUT_MARKER`] when cut.
pub fn bounded_message(text: String) -> String {
    if text.len() <= MAX_MESSAGE_BYTES {
        return text;
    }
    let kept = prefix_within(&text, MAX_MESSAGE_BYTES - CUT_MARKER.len());
    format!("{kept}{CUT_MARKER}")
}

/// The longest prefix of `text` that is at most `max` bytes and ends on a character boundary.
pub fn prefix_within(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cuts_keep_whole_characters() {
        assert_eq!(prefix_within("abc", 5), "abc");
        assert_eq!(prefix_within("abcdef", 3), "abc");
        assert_eq!(prefix_within("aé", 2), "a");
        assert_eq!(prefix_within("é", 1), "");
    }

    #[test]
    fn long_messages_are_cut_with_a_marker() {
        assert_eq!(bounded_message("short".into()), "short");
        let cut = bounded_message("é".repeat(2000));
        assert!(cut.len() <= MAX_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.ends_with(CUT_MARKER));
    }

    proptest! {
        #[test]
        fn a_cut_is_the_longest_valid_prefix(text in ".{0,40}", max in 0usize..60) {
            let cut = prefix_within(&text, max);
            prop_assert!(cut.len() <= max);
            prop_assert!(text.starts_with(cut));
            if cut.len() < text.len() {
                let next = text[cut.len()..].chars().next().map_or(0, char::len_utf8);
                prop_assert!(cut.len() + next > max);
            }
        }
    }
}
