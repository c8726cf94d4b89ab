//! The raw parse tree, shaped like BuildKit's `parser.Node`, and its dump in the notation of
//! BuildKit's parser test files.

use std::fmt::Write as _;

use crate::error::Source;

/// A parsed Dockerfile: parser directives and one node per instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ast {
    /// The parser directives at the top (`# syntax=`, `# escape=`, `# check=`).
    pub directives: Directives,
    /// One node per instruction, in file order.
    pub children: Vec<Node>,
    /// Non-fatal findings of the parser (empty continuation lines).
    pub warnings: Vec<crate::Warning>,
    pub(crate) source: Source,
}

/// The parser directives read before the first instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// `# syntax=...`, kept as written.
    pub syntax: Option<String>,
    /// `# escape=...`: `\` (the default) or `` ` ``.
    pub escape: char,
    /// `# check=...`, kept as written.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Directives {
        Directives {
            syntax: None,
            escape: '\\',
            check: None,
        }
    }
}

/// One instruction as the parser saw it, before any interpretation of its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The keyword as written (`RUN`, `run`, ...).
    pub keyword: String,
    /// Flags (`--from=x`) exactly as written, quotes removed the way BuildKit removes them.
    pub flags: Vec<String>,
    /// The arguments. For ENV and LABEL: key, raw value and separator triples.
    pub args: Vec<String>,
    /// ONBUILD's inner instruction.
    pub inner: Option<Box<Node>>,
    /// Whether the arguments were given in JSON (exec) form.
    pub json: bool,
    /// Heredocs whose bodies followed the instruction line, in order.
    pub heredocs: Vec<Heredoc>,
    /// The instruction text after joining continuation lines (heredoc bodies excluded).
    pub original: String,
    /// 1-based first and last line, heredoc bodies included.
    pub start_line: usize,
    /// The last line (1-based) of the instruction, heredoc bodies included.
    pub end_line: usize,
    /// Byte offsets of the instruction in the source (for error labels).
    pub(crate) span: (usize, usize),
}

/// A heredoc (`<<EOF ... EOF`) attached to RUN, COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with quotes removed (`EOF`); for COPY/ADD it is also the file name.
    pub name: String,
    /// The body, every line with its newline. With `<<-` leading tabs are already stripped.
    pub content: String,
    /// False when any part of the delimiter was quoted: the body is then not expanded.
    pub expand: bool,
    /// `<<-`: leading tabs stripped from the body and the terminator.
    pub chomp: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when absent.
    pub fd: u32,
}

impl Node {
    /// The keyword in lower case.
    pub fn name(&self) -> String {
        self.keyword.to_ascii_lowercase()
    }

    /// This node in BuildKit's test notation, without the surrounding parentheses.
    pub fn dump(&self) -> String {
        let mut out = self.name();
        if !self.flags.is_empty() {
            out.push_str(" [");
            for (i, flag) in self.flags.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(&go_quote(flag));
            }
            out.push(']');
        }
        if let Some(inner) = &self.inner {
            let _ = write!(out, " ({})", inner.dump());
        }
        for arg in &self.args {
            out.push(' ');
            out.push_str(&go_quote(arg));
        }
        out.trim().to_string()
    }
}

impl Ast {
    /// The whole tree in BuildKit's test notation: one `(instruction ...)` a line, each line
    /// ending in a newline, byte for byte like the `result` files of BuildKit's parser tests.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for node in &self.children {
            out.push('(');
            out.push_str(&node.dump());
            out.push_str(")\n");
        }
        out
    }

    /// The file name given to [`crate::parse`].
    pub fn file_name(&self) -> &str {
        &self.source.name
    }

    /// The text that was parsed (without a byte-order mark).
    pub fn text(&self) -> &str {
        &self.source.text
    }
}

/// Quotes a string the way Go's `strconv.Quote` (and `%q`) does.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_go_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\U{:08x}", c as u32);
            }
        }
    }
    out.push('"');
    out
}

/// An approximation of Go's `unicode.IsPrint` without Unicode tables: everything except
/// control characters, spaces other than U+0020, format characters, private use and
/// non-characters.
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format = matches!(u,
        0xad | 0x600..=0x605 | 0x61c | 0x6dd | 0x70f | 0x890..=0x891 | 0x8e2 | 0x180e
        | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0x2066..=0x206f
        | 0xfeff | 0xfff9..=0xfffb | 0x110bd | 0x110cd | 0x13430..=0x1343f
        | 0x1bca0..=0x1bca3 | 0x1d173..=0x1d17a | 0xe0001 | 0xe0020..=0xe007f);
    let private = matches!(u, 0xe000..=0xf8ff | 0xf0000..=0xffffd | 0x100000..=0x10fffd);
    let nonchar = (0xfdd0..=0xfdef).contains(&u) || (u & 0xfffe) == 0xfffe;
    !(format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    #[test]
    fn go_quote_escapes_like_strconv_quote() {
        assert_eq!(go_quote("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(
            go_quote("\u{0}\u{7}\u{8}\u{c}\n\r\t\u{b}\u{7f}"),
            r#""\x00\a\b\f\n\r\t\v\x7f""#
        );
        assert_eq!(go_quote("♥ 한국어"), "\"♥ 한국어\"");
        assert_eq!(go_quote("\u{a0}\u{200b}\u{85}"), r#""\u00a0\u200b\u0085""#);
        assert_eq!(go_quote("\u{10fffd}"), r#""\U0010fffd""#);
    }
}
