//! Output formats shared by commands.

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
    Dot,
    Matrix,
}

/// Prints `value` as JSON or YAML.
pub fn print_structured<T: Serialize>(value: &T, format: Format) -> anyhow::Result<()> {
    match format {
        Format::Yaml => print!("{}", yaml_serde::to_string(value)?),
        _ => println!("{}", serde_json::to_string_pretty(value)?),
    }
    Ok(())
}

/// Prints rows as an aligned table with a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", render_table(header, rows));
}

/// Renders rows as an aligned table with a header: columns two spaces apart, each as wide as
/// its widest cell (in characters), no trailing spaces, one line per row.
pub fn render_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let parts: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_characters_without_trailing_spaces() {
        let rows = vec![
            vec!["ä".to_string(), "x".to_string(), String::new()],
            vec!["long".to_string(), "yy".to_string(), "z".to_string()],
        ];
        assert_eq!(
            render_table(&["A", "B", "C"], &rows),
            "A     B   C\nä     x\nlong  yy  z\n"
        );
    }
}
