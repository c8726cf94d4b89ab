//! `--format` as docker reads it: `table` (the command's own columns), `json` (the command's
//! JSON), or a Go template (`{{.Repository}}:{{.Tag}}`), optionally prefixed with `table ` to
//! get a header row and columns aligned at tabs.

use std::io::Write;

use anyhow::Context as _;
use serde_json::Value;

use crate::gotmpl::{self, Missing, Template};

/// How a listing prints.
pub enum Format {
    /// The command's default table.
    Table,
    /// The command's JSON.
    Json,
    /// A Go template, rendered once per row.
    Template { table: bool, template: Template },
}

impl Format {
    /// Reads a `--format` value; `\t` and `\n` written as two characters become a tab and a
    /// newline, as in docker.
    pub fn parse(text: Option<&str>) -> anyhow::Result<Format> {
        let Some(text) = text else {
            return Ok(Format::Table);
        };
        match text.trim() {
            "" | "table" => return Ok(Format::Table),
            "json" => return Ok(Format::Json),
            _ => {}
        }
        let (table, body) = match text.strip_prefix("table") {
            Some(rest) if rest.starts_with(char::is_whitespace) => (true, rest),
            _ => (false, text),
        };
        let body = body.trim().replace("\\t", "\t").replace("\\n", "\n");
        let template =
            Template::parse(&body).with_context(|| format!("bad --format template {text:?}"))?;
        Ok(Format::Template { table, template })
    }

    /// Whether the caller should print its own table or JSON.
    pub fn is_template(&self) -> bool {
        matches!(self, Format::Template { .. })
    }
}

/// Renders `rows` with a template; `header` maps each field to its column title for `table`.
/// A field the rows lack is an error, as with docker's listings.
pub fn print_template(
    format: &Format,
    rows: &[Value],
    header: &[(&str, &str)],
) -> anyhow::Result<()> {
    render_rows(format, rows, header, Missing::Error)
}

/// Renders decoded JSON documents, as `docker inspect --format` does: a missing key prints
/// `<no value>`.
pub fn print_documents(format: &Format, docs: &[Value]) -> anyhow::Result<()> {
    render_rows(format, docs, &[], Missing::NoValue)
}

fn render_rows(
    format: &Format,
    rows: &[Value],
    header: &[(&str, &str)],
    missing: Missing,
) -> anyhow::Result<()> {
    let Format::Template { table, template } = format else {
        anyhow::bail!("print_template needs a template format");
    };
    let mut text = String::new();
    if *table {
        let titles: serde_json::Map<String, Value> = header
            .iter()
            .map(|(field, title)| (field.to_string(), Value::String(title.to_string())))
            .collect();
        text.push_str(
            &template
                .render_with(&Value::Object(titles), gotmpl::header_funcs, Missing::Error)
                .context("rendering the --format header")?,
        );
        text.push('\n');
    }
    for row in rows {
        text.push_str(
            &template
                .render_with(row, gotmpl::docker_funcs, missing)
                .context("rendering --format")?,
        );
        text.push('\n');
    }
    if *table {
        text = gotmpl::tabwrite(&text);
    }
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Writes a line to stdout, returning the error (a closed pipe ends the command quietly, see
/// `report` in main.rs) instead of panicking like `println!`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)?
    }};
}
