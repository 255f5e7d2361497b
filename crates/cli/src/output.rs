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
    let mut out = markdown_line(header);
    out.push_str(&markdown_line(&vec!["---"; header.len()]));
    for row in rows {
        out.push_str(&markdown_line(row));
    }
    out
}

/// One Markdown table line.
fn markdown_line<S: AsRef<str>>(cells: &[S]) -> String {
    let cells: Vec<String> = cells
        .iter()
        .map(|c| c.as_ref().replace('|', "\\|"))
        .collect();
    format!("| {} |\n", cells.join(" | "))
}

/// Renders rows as CSV: a header line, cells quoted when they hold `,`, `"` or a newline.
pub fn render_csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = csv_line(header);
    for row in rows {
        out.push_str(&csv_line(row));
    }
    out
}

/// One CSV line.
fn csv_line<S: AsRef<str>>(cells: &[S]) -> String {
    let cells: Vec<String> = cells
        .iter()
        .map(|c| {
            let c = c.as_ref();
            if c.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", c.replace('"', "\"\""))
            } else {
                c.to_string()
            }
        })
        .collect();
    format!("{}\n", cells.join(","))
}

/// Writes rows as they come in Markdown or CSV; an aligned table needs every row for its
/// widths, so its rows are held and printed by [`RowWriter::finish`].
pub struct RowWriter {
    format: Format,
    header: Vec<String>,
    held: Vec<Vec<String>>,
    out: std::io::BufWriter<std::io::Stdout>,
}

impl RowWriter {
    /// Starts the output (the header of Markdown and CSV).
    pub fn new(format: Format, header: &[&str]) -> std::io::Result<RowWriter> {
        let mut w = RowWriter {
            format,
            header: header.iter().map(|h| h.to_string()).collect(),
            held: Vec::new(),
            out: std::io::BufWriter::new(std::io::stdout()),
        };
        match format {
            Format::Md => {
                w.write(markdown_line(header))?;
                w.write(markdown_line(&vec!["---"; header.len()]))?;
            }
            Format::Csv => w.write(csv_line(header))?,
            _ => {}
        }
        Ok(w)
    }

    fn write(&mut self, text: String) -> std::io::Result<()> {
        use std::io::Write;
        self.out.write_all(text.as_bytes())
    }

    pub fn row(&mut self, cells: Vec<String>) -> std::io::Result<()> {
        match self.format {
            Format::Md => self.write(markdown_line(&cells)),
            Format::Csv => self.write(csv_line(&cells)),
            _ => {
                self.held.push(cells);
                Ok(())
            }
        }
    }

    /// Prints what was held and flushes.
    pub fn finish(mut self) -> std::io::Result<()> {
        use std::io::Write;
        if !matches!(self.format, Format::Md | Format::Csv) {
            let header: Vec<&str> = self.header.iter().map(String::as_str).collect();
            let text = render_table(&header, &self.held);
            self.write(text)?;
        }
        self.out.flush()
    }
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
    println!("{}", dot_open(name));
    for e in edges {
        println!("{}", dot_edge(e));
    }
    println!("}}");
}

/// The first line of a Graphviz digraph (the last is `}`).
pub fn dot_open(name: &str) -> String {
    format!("digraph {name} {{")
}

/// One edge line of a Graphviz digraph.
pub fn dot_edge(e: &DotEdge) -> String {
    let attrs = e
        .attrs
        .as_deref()
        .map_or(String::new(), |a| format!(", {a}"));
    format!("  {:?} -> {:?} [label={:?}{attrs}];", e.src, e.dst, e.label)
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
