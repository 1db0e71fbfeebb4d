//! Colour: only on a terminal, never with `NO_COLOR`.

/// How text is painted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

/// ANSI colours used for phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paint {
    Green,
    Red,
    Yellow,
    Blue,
    Dim,
}

impl Paint {
    fn code(self) -> &'static str {
        match self {
            Paint::Green => "32",
            Paint::Red => "31",
            Paint::Yellow => "33",
            Paint::Blue => "34",
            Paint::Dim => "2",
        }
    }
}

impl Style {
    /// Colour when `terminal` and `NO_COLOR` is unset or empty (<https://no-color.org>).
    pub fn detect(terminal: bool) -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: terminal && !no_color,
        }
    }

    /// `text` in `paint`, or as is without colour.
    pub fn paint(self, text: &str, paint: Option<Paint>) -> String {
        match paint {
            Some(paint) if self.color => format!("\x1b[{}m{text}\x1b[0m", paint.code()),
            _ => text.to_string(),
        }
    }
}

/// The colour of a phase (execution or step).
pub fn phase_paint(phase: &str) -> Option<Paint> {
    match phase {
        "Succeeded" => Some(Paint::Green),
        "Failed" => Some(Paint::Red),
        "Cancelled" | "Paused" | "Retrying" => Some(Paint::Yellow),
        "Running" => Some(Paint::Blue),
        "Queued" | "Pending" => Some(Paint::Dim),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_colour_leaves_text_alone() {
        assert_eq!(Style::default().paint("Failed", Some(Paint::Red)), "Failed");
        let coloured = Style { color: true }.paint("Failed", Some(Paint::Red));
        assert_eq!(coloured, "\x1b[31mFailed\x1b[0m");
    }
}
