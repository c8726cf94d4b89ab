//! Text to [`Ast`]: parser directives, comments, line continuations, heredocs, and the
//! per-instruction argument shapes of BuildKit's `parser` package.

use crate::ast::{Ast, Directives, Heredoc, Node};
use crate::error::Source;
use crate::json::{parse_string_array, JsonArgs};
use crate::shell::Lexer;
use crate::suggest::did_you_mean;
use crate::{Error, Warning};

/// Every instruction keyword, in lower case.
pub(crate) const INSTRUCTIONS: [&str; 18] = [
    "add",
    "arg",
    "cmd",
    "copy",
    "entrypoint",
    "env",
    "expose",
    "from",
    "healthcheck",
    "label",
    "maintainer",
    "onbuild",
    "run",
    "shell",
    "stopsignal",
    "user",
    "volume",
    "workdir",
];

/// Parses a Dockerfile into its raw tree. `file_name` is used in error messages only.
pub fn parse(text: &str, file_name: &str) -> Result<Ast, Error> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let source = Source {
        name: file_name.to_string(),
        text: text.to_string(),
    };
    let mut p = Parser {
        source: &source,
        dir: DirectiveParser::default(),
        lines: Lines::new(text),
    };
    let mut children = Vec::new();
    let mut warnings = Vec::new();
    let mut line_no = 0;

    while let Some((raw, raw_start)) = p.lines.next() {
        let processed = p.process_line(raw, raw_start, true)?;
        line_no += 1;
        let start_line = line_no;
        let start_offset = raw_start + (raw.len() - raw.trim_start().len());
        let (first, mut end_of_line) = trim_continuation(processed, p.dir.escape);
        if end_of_line && first.is_empty() {
            continue;
        }
        let mut line = first.to_string();
        let mut empty_continuation = false;
        let mut end_offset = raw_start + trim_newline(raw).len();
        while !end_of_line {
            let Some((raw, raw_start)) = p.lines.next() else {
                break;
            };
            let processed = p.process_line(raw, raw_start, false)?;
            line_no += 1;
            if is_comment(raw) {
                continue;
            }
            if processed.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            end_offset = raw_start + trim_newline(raw).len();
            let (part, eol) = trim_continuation(processed, p.dir.escape);
            line.push_str(part);
            end_of_line = eol;
        }
        if empty_continuation {
            warnings.push(Warning {
                line: Some(start_line),
                message: "empty continuation lines will become errors in a future release".into(),
            });
        }
        let span = (start_offset, end_offset.max(start_offset));
        let mut node = p.node_from_line(&line, span)?;
        node.start_line = start_line;
        if can_contain_heredoc(&node) && line.contains("<<") {
            let heredocs = heredocs_from_line(&line).map_err(|m| p.error(span, m))?;
            for mut heredoc in heredocs {
                let mut terminated = false;
                while let Some((raw, _)) = p.lines.next() {
                    line_no += 1;
                    let mut candidate = trim_newline(raw);
                    if heredoc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == heredoc.name {
                        terminated = true;
                        break;
                    }
                    heredoc.content.push_str(raw);
                }
                if !terminated {
                    return Err(p.error(span, "unterminated heredoc"));
                }
                if heredoc.chomp {
                    heredoc.content = chomp_heredoc(&heredoc.content);
                }
                node.heredocs.push(heredoc);
            }
        }
        node.end_line = line_no;
        children.push(node);
    }

    if children.is_empty() {
        return Err(Error::at(
            &source,
            0,
            text.len(),
            "file with no instructions",
        ));
    }
    let directives = p.dir.finish();
    if let Some(syntax) = &directives.syntax {
        // tare has one front end, its own: a frontend image is never pulled nor run. The
        // Dockerfile is still built, `-labs` features included where tare has them.
        let line = text[..p.dir.syntax_offset].matches('\n').count() + 1;
        warnings.insert(
            0,
            Warning {
                line: Some(line),
                message: format!(
                    "the syntax directive \"{syntax}\" is ignored: tare does not run frontend \
                     images and builds this Dockerfile with its own front end"
                ),
            },
        );
    }
    Ok(Ast {
        directives,
        children,
        warnings,
        source,
    })
}

/// Lines with their newline, and the byte offset of each line.
struct Lines<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        Lines { text, pos: 0 }
    }

    fn next(&mut self) -> Option<(&'a str, usize)> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        let rest = &self.text[start..];
        let len = rest.find('\n').map_or(rest.len(), |i| i + 1);
        self.pos += len;
        Some((&rest[..len], start))
    }
}

struct Parser<'s> {
    source: &'s Source,
    dir: DirectiveParser,
    lines: Lines<'s>,
}

impl Parser<'_> {
    fn error(&self, span: (usize, usize), message: impl Into<String>) -> Error {
        Error::at(self.source, span.0, span.1, message)
    }

    /// BuildKit's `processLine`: strip the newline (and leading space on an instruction's
    /// first line), look for a parser directive, and blank out comments.
    fn process_line<'l>(
        &mut self,
        raw: &'l str,
        offset: usize,
        strip_left: bool,
    ) -> Result<&'l str, Error> {
        let mut token = trim_newline(raw);
        if strip_left {
            token = token.trim_start();
        }
        let had_syntax = self.dir.syntax.is_some();
        if let Err(message) = self.dir.possible_directive(token) {
            let end = offset + trim_newline(raw).len();
            return Err(Error::at(self.source, offset, end, message));
        }
        if !had_syntax && self.dir.syntax.is_some() {
            self.dir.syntax_offset = offset;
        }
        Ok(if is_comment(token) { "" } else { token })
    }

    fn node_from_line(&self, line: &str, span: (usize, usize)) -> Result<Node, Error> {
        let trimmed = line.trim();
        let (cmd, rest) = match trimmed.find(is_space_separator) {
            Some(i) => (
                &trimmed[..i],
                trimmed[i..].trim_start_matches(is_space_separator),
            ),
            None => (trimmed, ""),
        };
        let (flags, args) = if rest.is_empty() {
            (Vec::new(), "")
        } else {
            extract_flags(rest)
        };
        let args = args.trim();
        let name = cmd.to_ascii_lowercase();
        if !INSTRUCTIONS.contains(&name.as_str()) {
            let key_end = span.0 + cmd.len();
            let mut message = format!("unknown instruction: {cmd}");
            if let Some(s) = did_you_mean(&name, &INSTRUCTIONS) {
                message.push_str(&format!(" (did you mean {}?)", s.to_ascii_uppercase()));
            }
            return Err(self.error((span.0, key_end), message));
        }
        let mut node = Node {
            keyword: cmd.to_string(),
            flags,
            args: Vec::new(),
            inner: None,
            json: false,
            heredocs: Vec::new(),
            original: line.to_string(),
            start_line: 0,
            end_line: 0,
            span,
        };
        let escape = self.dir.escape;
        let fail = |m: String| self.error(span, m);
        match name.as_str() {
            "add" | "copy" | "volume" => {
                (node.args, node.json) = maybe_json_to_list(args).map_err(fail)?;
            }
            "cmd" | "entrypoint" | "run" | "shell" => {
                (node.args, node.json) = maybe_json(args).map_err(fail)?;
            }
            "arg" => node.args = parse_words(args, escape),
            "env" | "label" => node.args = parse_name_val(args, &name, escape).map_err(fail)?,
            "expose" | "from" => node.args = whitespace_delimited(args),
            "healthcheck" => (node.args, node.json) = health_config(args).map_err(fail)?,
            "onbuild" => {
                // BuildKit nests without limit; a bound keeps hostile input off the stack.
                let nested = args
                    .split_whitespace()
                    .take_while(|w| w.eq_ignore_ascii_case("onbuild"))
                    .count();
                if nested >= 16 {
                    return Err(fail(
                        "chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into(),
                    ));
                }
                if !args.is_empty() {
                    let offset = span.0 + line.find(args).unwrap_or(0);
                    node.inner = Some(Box::new(self.node_from_line(args, (offset, span.1))?));
                }
            }
            // maintainer, stopsignal, user, workdir
            _ => {
                if !args.is_empty() {
                    node.args = vec![args.to_string()];
                }
            }
        }
        Ok(node)
    }
}

/// `[\t\v\f\r ]`, BuildKit's `reWhitespace`.
fn is_space_separator(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    trim_newline(line).trim_start().starts_with('#')
}

/// Removes a trailing escape character (and blanks after it) that continues the line. An
/// escape preceded by another escape is not a continuation.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let body = line.trim_end_matches([' ', '\t']);
    match body.strip_suffix(escape) {
        Some(before) if !before.ends_with(escape) => (before, false),
        _ => (line, true),
    }
}

/// Removes leading tabs from every line (`<<-`).
pub(crate) fn chomp_heredoc(content: &str) -> String {
    content
        .split_inclusive('\n')
        .map(|l| l.trim_start_matches('\t'))
        .collect()
}

struct DirectiveParser {
    done: bool,
    escape_set: bool,
    escape: char,
    syntax: Option<String>,
    /// Where the `syntax` line starts, for the warning that names it.
    syntax_offset: usize,
    check: Option<String>,
}

impl Default for DirectiveParser {
    fn default() -> DirectiveParser {
        DirectiveParser {
            done: false,
            escape_set: false,
            escape: '\\',
            syntax: None,
            syntax_offset: 0,
            check: None,
        }
    }
}

impl DirectiveParser {
    /// Recognises `# name=value` while no other line has been seen. Returns an error for a
    /// repeated directive or an invalid escape character.
    fn possible_directive(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        let slot_seen = match key.as_str() {
            "escape" => {
                let seen = self.escape_set;
                self.escape_set = true;
                seen
            }
            "syntax" => self.syntax.is_some(),
            "check" => self.check.is_some(),
            _ => {
                self.done = true;
                return Ok(());
            }
        };
        if slot_seen {
            return Err(format!("only one {key} parser directive can be used"));
        }
        match key.as_str() {
            "escape" => match value {
                "\\" => self.escape = '\\',
                "`" => self.escape = '`',
                _ => {
                    return Err(format!(
                        "invalid escape token '{value}' does not match ` or \\"
                    ))
                }
            },
            "syntax" => self.syntax = Some(value.to_string()),
            _ => self.check = Some(value.to_string()),
        }
        Ok(())
    }

    fn finish(&self) -> Directives {
        Directives {
            syntax: self.syntax.clone(),
            escape: self.escape,
            check: self.check.clone(),
        }
    }
}

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = &rest[..key_len];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[key_len..].trim_start().strip_prefix('=')?.trim();
    if value.is_empty() {
        return None;
    }
    Some((key, value))
}

/// BuildKit's `extractBuilderFlags`: leading `--name[=value]` words, up to `--` or the first
/// word not starting with `--`. Works byte-wise like the original.
fn extract_flags(line: &str) -> (Vec<String>, &str) {
    #[derive(PartialEq)]
    enum Phase {
        Spaces,
        Word,
        Quote,
    }
    let b = line.as_bytes();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word: Vec<char> = Vec::new();
    let mut quote = 0u8;
    let mut blank_ok = false;
    let mut pos = 0;
    let as_string = |w: &Vec<char>| w.iter().collect::<String>();
    while pos <= b.len() {
        let ch = b.get(pos).copied().unwrap_or(0);
        if phase == Phase::Spaces {
            if pos == b.len() {
                break;
            }
            if (ch as char).is_ascii_whitespace() || ch == b'\x0b' {
                pos += 1;
                continue;
            }
            if ch != b'-' || b.get(pos + 1) != Some(&b'-') {
                return (words, &line[pos..]);
            }
            phase = Phase::Word;
        }
        if pos == b.len() {
            let w = as_string(&word);
            if w != "--" && (blank_ok || !w.is_empty()) {
                words.push(w);
            }
            break;
        }
        if phase == Phase::Word {
            if (ch as char).is_ascii_whitespace() || ch == b'\x0b' {
                phase = Phase::Spaces;
                let w = as_string(&word);
                if w == "--" {
                    return (words, &line[pos..]);
                }
                if blank_ok || !w.is_empty() {
                    words.push(w);
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == b'\'' || ch == b'"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            let mut c = ch;
            if ch == b'\\' {
                if pos + 1 == b.len() {
                    pos += 1;
                    continue;
                }
                pos += 1;
                c = b[pos];
            }
            // Go appends each byte as a rune: bytes above 0x7f become Latin-1 characters.
            word.push(c as char);
            pos += 1;
            continue;
        }
        // Phase::Quote
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        let mut c = ch;
        if ch == b'\\' {
            if pos + 1 == b.len() {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            c = b[pos];
        }
        word.push(c as char);
        pos += 1;
    }
    (words, "")
}

/// BuildKit's `parseWords`: split on white space, keeping quotes and escapes in the words.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut in_quote: Option<char> = None;
    let mut blank_ok = false;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let at_end = chars.peek().is_none();
        match in_quote {
            None if !in_word => {
                if c.is_whitespace() {
                    continue;
                }
                in_word = true;
            }
            _ => {}
        }
        match in_quote {
            None => {
                if c.is_whitespace() {
                    in_word = false;
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    continue;
                }
                if c == '\'' || c == '"' {
                    in_quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    if at_end {
                        continue;
                    }
                    word.push(c);
                    word.extend(chars.next());
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    in_quote = None;
                }
                if c == escape && q != '\'' {
                    if at_end {
                        in_quote = None;
                        continue;
                    }
                    word.push(c);
                    word.extend(chars.next());
                    continue;
                }
                word.push(c);
            }
        }
    }
    if in_word && (blank_ok || !word.is_empty()) {
        words.push(word);
    }
    words
}

/// ENV and LABEL: `KEY value` (old form) or `KEY=value ...`, as key, value, separator triples.
fn parse_name_val(rest: &str, key: &str, escape: char) -> Result<Vec<String>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let Some(i) = rest.find(is_space_separator) else {
            return Err(format!(
                "{} must have two arguments",
                key.to_ascii_uppercase()
            ));
        };
        let value = rest[i..].trim_start_matches(is_space_separator);
        return Ok(vec![
            rest[..i].to_string(),
            value.to_string(),
            String::new(),
        ]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for word in words {
        let Some((k, v)) = word.split_once('=') else {
            return Err(format!(
                "syntax error - can't find = in {word:?}. Must be of the form: name=value"
            ));
        };
        out.extend([k.to_string(), v.to_string(), "=".to_string()]);
    }
    Ok(out)
}

fn whitespace_delimited(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    // Split on runs of blanks, like Go's `reWhitespace.Split` (rest is already trimmed).
    rest.split(is_space_separator)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn json_or(rest: &str) -> Result<Option<Vec<String>>, String> {
    match parse_string_array(rest) {
        JsonArgs::Strings(v) => Ok(Some(v)),
        JsonArgs::Invalid => Ok(None),
        JsonArgs::NotStrings => Err("json: cannot unmarshal into Go value of type string: \
                                     the array must contain only strings"
            .into()),
    }
}

fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match json_or(rest)? {
        Some(v) => (v, true),
        None => (vec![rest.to_string()], false),
    })
}

fn maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    Ok(match json_or(rest)? {
        Some(v) => (v, true),
        None => (whitespace_delimited(rest), false),
    })
}

/// HEALTHCHECK: a type word (`CMD`, `NONE`, ...) followed by a shell or JSON command.
fn health_config(rest: &str) -> Result<(Vec<String>, bool), String> {
    let sep = rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let cmd = rest[sep..].trim_start();
    let (mut args, json) = maybe_json(cmd)?;
    args.insert(0, rest[..sep].to_string());
    Ok((args, json))
}

fn can_contain_heredoc(node: &Node) -> bool {
    let node = match &node.inner {
        Some(inner) if node.name() == "onbuild" => inner,
        _ => node,
    };
    matches!(node.name().as_str(), "add" | "copy" | "run") && !node.json
}

/// Finds the heredocs (`<<EOF`, `<<-"EOF"`, `3<<EOF`) named on an instruction line.
fn heredocs_from_line(line: &str) -> Result<Vec<Heredoc>, String> {
    let lexer = Lexer {
        raw_quotes: true,
        raw_escapes: true,
        ..Lexer::new('\\')
    };
    let words = lexer
        .process(line, &|_: &str| None)
        .map(|(_, w)| w)
        .unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// One word: `^(\d*)<<(-?)([^<]*)$`.
pub(crate) fn parse_heredoc(word: &str) -> Result<Option<Heredoc>, String> {
    let digits = word.bytes().take_while(u8::is_ascii_digit).count();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let fd = word[..digits].parse().unwrap_or(0);
    let unset = |_: &str| None;
    let lexer = Lexer {
        skip_unset_env: true,
        ..Lexer::new('\\')
    };
    let words = lexer.process(rest, &unset).map_err(|e| e.to_string())?.1;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = Lexer {
        raw_quotes: true,
        ..lexer
    }
    .process(rest, &unset)
    .map_err(|e| e.to_string())?
    .1;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    let expand = quotes(&words[0]) == quotes(&raw[0]);
    Ok(Some(Heredoc {
        name: words[0].clone(),
        content: String::new(),
        expand,
        chomp,
        fd,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dump(text: &str) -> String {
        parse(text, "Dockerfile")
            .map(|a| a.dump())
            .unwrap_or_else(|e| format!("error: {e}"))
    }

    #[test]
    fn keywords_are_case_insensitive_and_dumped_in_lower_case() {
        assert_eq!(
            dump("from alpine\nRuN echo hi\n"),
            "(from \"alpine\")\n(run \"echo hi\")\n"
        );
    }

    #[test]
    fn every_instruction_has_its_argument_shape() {
        let text = "FROM a AS b\nRUN x\nCMD [\"c\"]\nLABEL a=b c=\"d e\"\nMAINTAINER me\nEXPOSE 80 443/udp\n\
                    ENV K V W\nADD a b\nCOPY [\"a\", \"b\"]\nENTRYPOINT e f\nVOLUME /v /w\nUSER u\n\
                    WORKDIR /w\nARG A=1 B\nONBUILD RUN x\nSTOPSIGNAL TERM\nHEALTHCHECK NONE\nSHELL [\"sh\", \"-c\"]\n";
        let want = "(from \"a\" \"AS\" \"b\")\n(run \"x\")\n(cmd \"c\")\n\
                    (label \"a\" \"b\" \"=\" \"c\" \"\\\"d e\\\"\" \"=\")\n(maintainer \"me\")\n\
                    (expose \"80\" \"443/udp\")\n(env \"K\" \"V W\" \"\")\n(add \"a\" \"b\")\n\
                    (copy \"a\" \"b\")\n(entrypoint \"e f\")\n(volume \"/v\" \"/w\")\n(user \"u\")\n\
                    (workdir \"/w\")\n(arg \"A=1\" \"B\")\n(onbuild (run \"x\"))\n(stopsignal \"TERM\")\n\
                    (healthcheck \"NONE\")\n(shell \"sh\" \"-c\")\n";
        assert_eq!(dump(text), want);
    }

    #[test]
    fn directives_only_before_the_first_instruction() {
        let ast = parse("# syntax=docker/dockerfile:1\n# escape=`\n# check=skip=all\nFROM a\n# escape=\\\nRUN a `\n b\n", "D")
            .unwrap();
        assert_eq!(
            ast.directives.syntax.as_deref(),
            Some("docker/dockerfile:1")
        );
        assert_eq!(ast.directives.check.as_deref(), Some("skip=all"));
        assert_eq!(ast.warnings.len(), 1, "{:?}", ast.warnings);
        assert_eq!(ast.warnings[0].line, Some(1));
        assert!(ast.warnings[0]
            .message
            .contains("syntax directive \"docker/dockerfile:1\" is ignored"));
        let second_line = parse(
            "# escape=`\n# syntax=docker/dockerfile:1.7-labs\nFROM a\n",
            "D",
        )
        .unwrap();
        assert_eq!(second_line.warnings[0].line, Some(2));
        assert_eq!(ast.directives.escape, '`');
        assert_eq!(ast.dump(), "(from \"a\")\n(run \"a  b\")\n");
        // A comment first ends the directives: the escape line is an ordinary comment.
        let ast = parse("# hello\n# escape=`\nFROM a\n", "D").unwrap();
        assert_eq!(ast.directives.escape, '\\');
        // So does an unknown directive.
        let ast = parse("# foo=bar\n# escape=`\nFROM a\n", "D").unwrap();
        assert_eq!(ast.directives.escape, '\\');
    }

    #[test]
    fn bad_directives_are_located_errors() {
        let e = parse("# escape=x\nFROM a\n", "D").unwrap_err().to_string();
        assert_eq!(e, "D:1:1: invalid escape token 'x' does not match ` or \\");
        let e = parse("# syntax=a\n# syntax=b\nFROM a\n", "D")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "D:2:1: only one syntax parser directive can be used");
    }

    #[test]
    fn continuations_skip_comments_and_blank_lines_and_may_end_the_file() {
        let ast = parse("FROM a\nRUN a \\\n# comment\n\n  b \\\n   \n c \\", "D").unwrap();
        assert_eq!(ast.dump(), "(from \"a\")\n(run \"a   b  c\")\n");
        assert_eq!(ast.children[1].start_line, 2);
        assert_eq!(ast.children[1].end_line, 7);
        assert_eq!(ast.warnings.len(), 1);
        // An escaped escape does not continue the line.
        assert_eq!(
            dump("FROM a\nENV A b\\\\\nENV B c\n"),
            "(from \"a\")\n(env \"A\" \"b\\\\\\\\\" \"\")\n(env \"B\" \"c\" \"\")\n"
        );
    }

    #[test]
    fn invalid_json_falls_back_to_shell_form_but_nested_json_is_an_error() {
        assert_eq!(dump("CMD ['a']"), "(cmd \"['a']\")\n");
        assert_eq!(dump("COPY [\"a\" b"), "(copy \"[\\\"a\\\"\" \"b\")\n");
        assert_eq!(
            dump("EXPOSE 80 \t  443\nVOLUME a   b"),
            "(expose \"80\" \"443\")\n(volume \"a\" \"b\")\n"
        );
        assert!(dump("CMD [\"a\", [\"b\"]]").starts_with("error: Dockerfile:1:1: json"));
    }

    #[test]
    fn flags_are_kept_as_written_until_a_double_dash() {
        assert_eq!(
            dump("COPY --from=a --chown=\"u g\" --link -- --x y\n"),
            "(copy [\"--from=a\" \"--chown=u g\" \"--link\"] \"--x\" \"y\")\n"
        );
        assert_eq!(dump("CMD --doit -- [ ]"), "(cmd [\"--doit\"])\n");
    }

    #[test]
    fn env_forms() {
        assert_eq!(
            dump("ENV a=1 b=\"2 3\"\n"),
            "(env \"a\" \"1\" \"=\" \"b\" \"\\\"2 3\\\"\" \"=\")\n"
        );
        assert!(dump("ENV a").contains("ENV must have two arguments"));
        assert!(dump("LABEL a=b c").contains("can't find = in \"c\""));
    }

    #[test]
    fn heredocs_are_read_after_the_instruction() {
        let ast = parse(
            "FROM a\nRUN <<EOF cat <<-'END'\necho $x\nEOF\n\t\tquoted\n\tEND\nCOPY <<A <<\"B\" /d/\na\nA\nb\nB\nRUN x\n",
            "D",
        )
        .unwrap();
        let run = &ast.children[1];
        assert_eq!(run.heredocs.len(), 2);
        assert_eq!(
            (
                run.heredocs[0].name.as_str(),
                run.heredocs[0].content.as_str()
            ),
            ("EOF", "echo $x\n")
        );
        assert!(run.heredocs[0].expand);
        assert_eq!(run.heredocs[1].content, "quoted\n");
        assert!(run.heredocs[1].chomp && !run.heredocs[1].expand);
        assert_eq!((run.start_line, run.end_line), (2, 6));
        let copy = &ast.children[2];
        assert_eq!(
            copy.heredocs
                .iter()
                .map(|h| h.name.as_str())
                .collect::<Vec<_>>(),
            ["A", "B"]
        );
        assert!(!copy.heredocs[1].expand);
        assert_eq!(ast.dump().lines().last(), Some("(run \"x\")"));
        assert!(dump("RUN <<EOF\nx\n").contains("unterminated heredoc"));
        // JSON form and other instructions have no heredocs.
        assert_eq!(
            dump("RUN [\"<<EOF\"]\nFROM a\n"),
            "(run \"<<EOF\")\n(from \"a\")\n"
        );
        assert_eq!(
            parse_heredoc("3<<-EOF").unwrap().map(|h| (h.fd, h.chomp)),
            Some((3, true))
        );
        assert_eq!(parse_heredoc("<<").unwrap(), None);
        assert_eq!(parse_heredoc("<<a b").unwrap(), None);
    }

    #[test]
    fn onbuild_nests_in_the_dump_but_not_without_bound() {
        assert_eq!(
            dump("ONBUILD ONBUILD RUN x"),
            "(onbuild (onbuild (run \"x\")))\n"
        );
        let deep = format!("{}RUN x\n", "ONBUILD ".repeat(100_000));
        assert!(dump(&deep).contains("chaining ONBUILD"));
    }

    #[test]
    fn empty_files_are_rejected() {
        assert!(dump("").contains("file with no instructions"));
        assert!(dump("# only\n\n# comments\n").contains("file with no instructions"));
    }

    #[test]
    fn misspelt_instructions_suggest_the_nearest() {
        let e = parse("FROM a\n  FRUM b\n", "Dockerfile")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "Dockerfile:2:3: unknown instruction: FRUM (did you mean FROM?)"
        );
        let e = parse("XYZZYQ\n", "D").unwrap_err().to_string();
        assert_eq!(e, "D:1:1: unknown instruction: XYZZYQ");
    }
}
