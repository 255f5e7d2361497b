//! Output formats shared by commands.

use std::io::IsTerminal;

use clap::ValueEnum;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
    Dot,
    Matrix,
    /// A Markdown table.
    Md,
    /// Comma-separated values with a header line (RFC 4180 quoting).
    Csv,
}

/// Prints rows in one of the row formats: an aligned table, Markdown or CSV.
pub fn print_rows(format: Format, header: &[&str], rows: &[Vec<String>]) {
    let text = match format {
        Format::Md => render_markdown(header, rows),
        Format::Csv => render_csv(header, rows),
        _ => render_table(header, rows),
    };
    print!("{text}");
}

/// Renders rows as a Markdown table (`|` in cells escaped).
pub fn render_markdown(header: &[&str], rows: &[Vec<String>]) -> String {
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let cells: Vec<String> = cells.map(|c| c.replace('|', "\\|")).collect();
        format!("| {} |\n", cells.join(" | "))
    };
    let mut out = line(&mut header.iter().copied());
    out.push_str(&line(&mut header.iter().map(|_| "---")));
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Renders rows as CSV: a header line, cells quoted when they hold `,`, `"` or a newline.
pub fn render_csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let cell = |c: &str| {
        if c.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", c.replace('"', "\"\""))
        } else {
            c.to_string()
        }
    };
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        out.push_str(&cells.join(","));
        out.push('\n');
    };
    line(header.iter().map(|h| cell(h)).collect());
    for row in rows {
        line(row.iter().map(|c| cell(c)).collect());
    }
    out
}

/// One edge of a Graphviz graph.
pub struct DotEdge {
    pub src: String,
    pub dst: String,
    pub label: String,
    /// Extra attributes, such as `color=red`.
    pub attrs: Option<String>,
}

/// Prints a Graphviz digraph.
pub fn print_dot(name: &str, edges: &[DotEdge]) {
    println!("digraph {name} {{");
    for e in edges {
        let attrs = e
            .attrs
            .as_deref()
            .map_or(String::new(), |a| format!(", {a}"));
        println!("  {:?} -> {:?} [label={:?}{attrs}];", e.src, e.dst, e.label);
    }
    println!("}}");
}

/// A progress callback for analyses over many workloads: a counter on a terminal's
/// stderr, nothing otherwise.
pub fn progress(what: &'static str) -> impl FnMut(usize, usize) {
    let tty = std::io::stderr().is_terminal();
    move |done, total| {
        if tty && total > 50 && (done % 25 == 0 || done == total) {
            eprint!("\r{what}: {done}/{total}");
            if done == total {
                eprintln!();
            }
        }
    }
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

    #[test]
    fn csv_quotes_port_lists_and_markdown_escapes_pipes() {
        let rows = vec![vec!["a|b".to_string(), "TCP 1,2 \"x\"".to_string()]];
        assert_eq!(
            render_csv(&["A", "B"], &rows),
            "A,B\na|b,\"TCP 1,2 \"\"x\"\"\"\n"
        );
        assert_eq!(
            render_markdown(&["A", "B"], &rows),
            "| A | B |\n| --- | --- |\n| a\\|b | TCP 1,2 \"x\" |\n"
        );
    }
}
