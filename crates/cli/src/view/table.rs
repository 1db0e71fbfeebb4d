//! Column-aligned tables as kubectl prints them: upper-case headers, three spaces between columns.

use super::style::{Paint, Style};

/// One cell: its text and, on a terminal, its colour.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub text: String,
    pub paint: Option<Paint>,
}

impl From<String> for Cell {
    fn from(text: String) -> Cell {
        Cell { text, paint: None }
    }
}

impl From<&str> for Cell {
    fn from(text: &str) -> Cell {
        Cell::from(text.to_string())
    }
}

impl Cell {
    pub fn painted(text: impl Into<String>, paint: Option<Paint>) -> Cell {
        Cell {
            text: text.into(),
            paint,
        }
    }
}

/// A table under construction.
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub headers: Vec<&'static str>,
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<Cell>) {
        self.rows.push(cells);
    }

    /// Column widths over headers and cells (`headers` counted only when printed).
    pub fn widths(&self, headers: bool) -> Vec<usize> {
        let mut widths: Vec<usize> = self
            .headers
            .iter()
            .map(|h| if headers { h.chars().count() } else { 0 })
            .collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(cell.text.chars().count());
                }
            }
        }
        widths
    }

    /// The table as lines, each ending in a newline; `indent` spaces before each.
    pub fn render(&self, headers: bool, indent: usize, style: Style) -> String {
        let widths = self.widths(headers);
        let mut out = String::new();
        if headers {
            let cells: Vec<Cell> = self.headers.iter().map(|h| Cell::from(*h)).collect();
            out.push_str(&line(&cells, &widths, indent, style));
        }
        for row in &self.rows {
            out.push_str(&line(row, &widths, indent, style));
        }
        out
    }
}

/// One line of cells padded to `widths` (the last cell unpadded, no trailing spaces).
pub fn line(cells: &[Cell], widths: &[usize], indent: usize, style: Style) -> String {
    let mut out = " ".repeat(indent);
    for (i, cell) in cells.iter().enumerate() {
        let last = i + 1 == cells.len();
        out.push_str(&style.paint(&cell.text, cell.paint));
        if !last {
            let width = widths.get(i).copied().unwrap_or(0);
            out.push_str(&" ".repeat(width.saturating_sub(cell.text.chars().count()) + 3));
        }
    }
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut table = Table::new(&["NAME", "PHASE"]);
        table.row(vec!["a-long-name".into(), "Running".into()]);
        table.row(vec!["b".into(), "".into()]);
        assert_eq!(
            table.render(true, 0, Style::default()),
            "NAME          PHASE\na-long-name   Running\nb\n"
        );
    }
}
