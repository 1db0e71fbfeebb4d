//! The progress bar drawn in tables and summaries: `██████░░░░ 2/3`.

/// A bar `width` cells wide, filled in proportion to `done / total`.
pub fn bar(done: u32, total: u32, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        (done.min(total) as usize * width) / total as usize
    };
    let mut text = String::with_capacity(width * 3);
    text.extend(std::iter::repeat_n('█', filled));
    text.extend(std::iter::repeat_n('░', width - filled));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars() {
        assert_eq!(bar(0, 3, 6), "░░░░░░");
        assert_eq!(bar(2, 3, 6), "████░░");
        assert_eq!(bar(3, 3, 6), "██████");
        assert_eq!(bar(5, 3, 6), "██████");
        assert_eq!(bar(0, 0, 4), "░░░░");
    }
}
