//! Cutting text to API size limits without splitting a character.

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
