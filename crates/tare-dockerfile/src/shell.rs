//! Shell-word processing with Docker's rules: quotes, the escape character and `$` expansion
//! (`$v ${v} ${v:-w} ${v-w} ${v:+w} ${v+w} ${v:?m} ${v?m} ${v#p} ${v##p} ${v%p} ${v%%p}
//! ${v/p/r} ${v//p/r}`). This is what Docker applies to ENV, ARG, COPY, WORKDIR and the other
//! expanding instructions; RUN, CMD and ENTRYPOINT are left to the shell in the container.

use crate::pattern::Pattern;
use crate::Error;

/// Expands one word: quotes removed, escapes applied, variables substituted. `env` answers
/// `Some(value)` for a set variable (possibly empty) and `None` for an unset one.
pub fn expand_word(
    word: &str,
    env: &impl Fn(&str) -> Option<String>,
    escape: char,
) -> Result<String, Error> {
    Lexer::new(escape).process(word, env).map(|(word, _)| word)
}

/// Expands a string into words: like [`expand_word`], then split on unquoted white space
/// (also white space that came from a variable's value).
pub fn expand_words(
    word: &str,
    env: &impl Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>, Error> {
    Lexer::new(escape)
        .process(word, env)
        .map(|(_, words)| words)
}

/// The lexer's switches, named after BuildKit's `shell.Lex` fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Lexer {
    pub escape: char,
    /// Keep quote characters in the output.
    pub raw_quotes: bool,
    /// Keep escape characters in the output.
    pub raw_escapes: bool,
    /// Leave `$unset` as written instead of expanding it to nothing.
    pub skip_unset_env: bool,
    /// Treat quotes as ordinary characters (heredoc bodies).
    pub skip_process_quotes: bool,
}

impl Lexer {
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// Returns the processed string and its split into words.
    pub fn process(
        &self,
        word: &str,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<(String, Vec<String>), Error> {
        let chars: Vec<char> = word.chars().collect();
        let mut sw = ShellWord {
            lex: *self,
            env,
            chars: &chars,
            pos: 0,
            depth: 0,
        };
        sw.process_stop_on(None, self.raw_escapes)
            .map_err(|message| Error::Expand {
                message: format!("failed to process {word:?}: {message}"),
            })
    }
}

struct ShellWord<'a, F> {
    lex: Lexer,
    env: &'a F,
    chars: &'a [char],
    pos: usize,
    /// Nesting of `${...}`, bounded so that hostile input cannot exhaust the stack.
    depth: usize,
}

/// Deeper `${a:-${b:-...}}` nesting than this is refused (BuildKit has no limit, but no
/// real Dockerfile comes near it).
const MAX_DEPTH: usize = 200;

#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for c in s.chars() {
            self.add_char(c);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(self.word);
        }
        self.words
    }
}

type Res<T> = Result<T, String>;

impl<F: Fn(&str) -> Option<String>> ShellWord<'_, F> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Res<(String, Vec<String>)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((result, words.finish()));
            }
            let special = match c {
                '\'' if !self.lex.skip_process_quotes => Some(self.process_single_quote()?),
                '"' if !self.lex.skip_process_quotes => Some(self.process_double_quote()?),
                '$' => Some(self.process_dollar()?),
                _ => None,
            };
            if let Some(tmp) = special {
                result.push_str(&tmp);
                if c == '$' {
                    words.add_string(&tmp);
                } else {
                    words.add_raw_string(&tmp);
                }
                continue;
            }
            self.pos += 1;
            if c == self.lex.escape {
                if raw_escapes {
                    words.add_raw_char(c);
                    result.push(c);
                }
                let Some(escaped) = self.next() else { break };
                words.add_raw_char(escaped);
                result.push(escaped);
            } else {
                words.add_char(c);
                result.push(c);
            }
        }
        match stop {
            Some(stop) => Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            )),
            None => Ok((result, words.finish())),
        }
    }

    fn process_single_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    )
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    fn process_double_quote(&mut self) -> Res<String> {
        let mut result = String::new();
        let open = self.next();
        if self.lex.raw_quotes {
            result.extend(open);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    )
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(mut c) => {
                    self.pos += 1;
                    if c == self.lex.escape {
                        match self.peek() {
                            // A trailing escape is dropped; the loop then reports the open quote.
                            None => continue,
                            Some(next) if next == '"' || next == '$' || next == self.lex.escape => {
                                if self.lex.raw_escapes {
                                    result.push(c);
                                }
                                c = next;
                                self.pos += 1;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(c);
                }
            }
        }
    }

    fn get_env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    fn process_dollar(&mut self) -> Res<String> {
        if self.depth >= MAX_DEPTH {
            return Err("variable substitutions nested too deeply".into());
        }
        self.depth += 1;
        let result = self.process_dollar_inner();
        self.depth -= 1;
        result
    }

    fn process_dollar_inner(&mut self) -> Res<String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            Some(_) => {}
        }
        let name = self.process_name();
        let Some(mut c) = self.next() else {
            return Err("syntax error: missing '}'".into());
        };
        let mut modifier = c.to_string();
        match c {
            '}' => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' | '+' | '-' | '?' | '#' | '%' => {
                let null_is_unset = c == ':';
                if null_is_unset {
                    match self.next() {
                        Some(next) => {
                            c = next;
                            modifier.push(c);
                        }
                        None => return Err("syntax error: missing '}'".into()),
                    }
                }
                let raw_escapes = c == '#' || c == '%';
                if null_is_unset && raw_escapes {
                    return Err(format!("unsupported modifier ({modifier}) in substitution"));
                }
                let word =
                    self.stop_on_or_missing('}', raw_escapes, "syntax error: missing '}'")?;
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{modifier}{word}}}"));
                }
                let empty = value
                    .as_deref()
                    .is_none_or(|v| null_is_unset && v.is_empty());
                match c {
                    '-' => Ok(if empty {
                        word
                    } else {
                        value.unwrap_or_default()
                    }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' => match value {
                        None => Err(format!(
                            "{name}: {}",
                            or(word, "is not allowed to be unset")
                        )),
                        Some(v) if null_is_unset && v.is_empty() => Err(format!(
                            "{name}: {}",
                            or(word, "is not allowed to be empty")
                        )),
                        Some(v) => Ok(v),
                    },
                    '#' | '%' => {
                        let (greedy, pattern) = match word.strip_prefix(c) {
                            Some(rest) => (true, rest),
                            None => (false, word.as_str()),
                        };
                        let value = value.unwrap_or_default();
                        let pattern = Pattern::parse(pattern).map_err(|e| {
                            format!("invalid pattern ({pattern}) in substitution: {e}")
                        })?;
                        Ok(if c == '#' {
                            pattern.trim_prefix(&value, greedy)
                        } else {
                            pattern.trim_suffix(&value, greedy)
                        })
                    }
                    _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
                }
            }
            '/' => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.pos += 1;
                }
                let pattern =
                    self.stop_on_or_missing('/', true, "syntax error: missing '/' in ${}")?;
                let replacement =
                    self.stop_on_or_missing('}', true, "syntax error: missing '}'")?;
                let Some(value) = self.get_env(&name) else {
                    if self.lex.skip_unset_env {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return Ok(String::new());
                };
                let compiled = Pattern::parse(&pattern)
                    .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
                Ok(compiled.replace(&value, &replacement, replace_all))
            }
            _ => Err(format!("unsupported modifier ({modifier}) in substitution")),
        }
    }

    fn stop_on_or_missing(&mut self, stop: char, raw_escapes: bool, missing: &str) -> Res<String> {
        match self.process_stop_on(Some(stop), raw_escapes) {
            Ok((word, _)) => Ok(word),
            Err(_) if self.peek().is_none() => Err(missing.into()),
            Err(e) => Err(e),
        }
    }

    /// A variable name: letters, digits and `_`; or a run of digits; or one special parameter.
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if name.is_empty() && is_digit(c) {
                while let Some(d) = self.peek().filter(|d| is_digit(*d)) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(c, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return c.to_string();
            }
            if !c.is_alphabetic() && !is_digit(c) && c != '_' {
                break;
            }
            name.push(c);
            self.pos += 1;
        }
        name
    }
}

fn is_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

fn or(word: String, default: &str) -> String {
    if word.is_empty() {
        default.to_string()
    } else {
        word
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PWD" => Some("/home".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("  a b  ".into()),
            "FILE" => Some("dir/sub/file.tar.gz".into()),
            _ => None,
        }
    }

    fn word(s: &str) -> Result<String, Error> {
        expand_word(s, &env, '\\')
    }

    fn ok(s: &str) -> String {
        word(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn plain_braced_and_missing_variables() {
        assert_eq!(ok("$PWD/x"), "/home/x");
        assert_eq!(ok("${PWD}x"), "/homex");
        assert_eq!(ok("a${NOPE}b$NOPE"), "ab");
        assert_eq!(ok("$"), "$");
        assert_eq!(ok("$.x"), "$.x");
        assert_eq!(ok("$1x"), "x");
        assert!(word("${}").is_err());
        assert!(word("${PWD").is_err());
        assert!(word("${.}").is_err());
    }

    #[test]
    fn default_alternative_and_error_modifiers() {
        assert_eq!(ok("${NOPE:-d}"), "d");
        assert_eq!(ok("${EMPTY:-d}"), "d");
        assert_eq!(ok("${EMPTY-d}"), "");
        assert_eq!(ok("${NOPE-d}"), "d");
        assert_eq!(ok("${PWD:+alt}"), "alt");
        assert_eq!(ok("${EMPTY:+alt}"), "");
        assert_eq!(ok("${EMPTY+alt}"), "alt");
        assert_eq!(ok("${NOPE+alt}"), "");
        assert_eq!(ok("${NOPE:-${PWD:-x}}"), "/home");
        assert_eq!(ok("${PWD:?}"), "/home");
        assert_eq!(ok("${EMPTY?}"), "");
        let e = word("${NOPE:?must be set}").unwrap_err().to_string();
        assert!(e.contains("NOPE: must be set"), "{e}");
        let e = word("${EMPTY:?}").unwrap_err().to_string();
        assert!(e.contains("EMPTY: is not allowed to be empty"), "{e}");
        let e = word("${NOPE?}").unwrap_err().to_string();
        assert!(e.contains("NOPE: is not allowed to be unset"), "{e}");
        assert!(word("${PWD:=x}").is_err());
    }

    #[test]
    fn prefix_and_suffix_removal() {
        assert_eq!(ok("${FILE#*/}"), "sub/file.tar.gz");
        assert_eq!(ok("${FILE##*/}"), "file.tar.gz");
        assert_eq!(ok("${FILE%.*}"), "dir/sub/file.tar");
        assert_eq!(ok("${FILE%%.*}"), "dir/sub/file");
        assert_eq!(ok("${FILE#dir}"), "/sub/file.tar.gz");
        assert_eq!(ok("${FILE#nomatch}"), "dir/sub/file.tar.gz");
        assert_eq!(ok("${FILE%?z}"), "dir/sub/file.tar.");
        assert_eq!(ok("${NOPE#x}"), "");
        assert!(word("${FILE:#x}").is_err());
    }

    #[test]
    fn pattern_replacement() {
        assert_eq!(ok("${FILE/\\//_}"), "dir_sub/file.tar.gz");
        assert_eq!(ok("${FILE//\\//_}"), "dir_sub_file.tar.gz");
        assert_eq!(ok("${FILE/s*b/X}"), "dir/X/file.tar.gz");
        assert_eq!(ok("${FILE//?ar/Y}"), "dir/sub/file.Y.gz");
        assert_eq!(ok("${NOPE/a/b}"), "");
        assert!(word("${FILE/x").is_err());
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(ok("'$PWD'"), "$PWD");
        assert_eq!(ok("\"$PWD\""), "/home");
        assert_eq!(ok("\\$PWD"), "$PWD");
        assert_eq!(ok("\"a\\tb\""), "a\\tb");
        assert_eq!(ok("a\\tb"), "atb");
        assert_eq!(ok("a\\"), "a");
        assert!(word("'a").is_err());
        assert!(word("\"a").is_err());
        assert_eq!(
            expand_word("a`$PWD", &env, '`').ok().as_deref(),
            Some("a$PWD")
        );
    }

    #[test]
    fn words_split_on_unquoted_space_and_variable_values() {
        let w = |s: &str| expand_words(s, &env, '\\').unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(w("a b  c"), ["a", "b", "c"]);
        assert_eq!(w("x${SP}y"), ["x", "a", "b", "y"]);
        assert_eq!(w("x\"${SP}\"y"), ["x  a b  y"]);
        assert_eq!(w("a\\ b"), ["a b"]);
        assert_eq!(w("a \"\""), ["a"]);
    }

    /// Pseudo-random strings over an alphabet rich in characters the lexer treats specially.
    fn random_strings() -> impl Iterator<Item = String> {
        let alphabet: Vec<char> = "ab $_{}:-+?#%/'\"\\`\t\n한*".chars().collect();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..3000).map(move |_| {
            let mut next = || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let len = (next() % 24) as usize;
            (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect()
        })
    }

    #[test]
    fn single_quoting_and_escaping_round_trip() {
        for s in random_strings() {
            // Never panics, whatever the input.
            let _ = expand_word(&s, &env, '\\');
            let _ = expand_words(&s, &env, '`');
            if !s.contains('\'') {
                assert_eq!(
                    expand_word(&format!("'{s}'"), &env, '\\').ok(),
                    Some(s.clone()),
                    "{s:?}"
                );
            }
            let escaped: String = s.chars().flat_map(|c| ['\\', c]).collect();
            assert_eq!(
                expand_word(&escaped, &env, '\\').ok(),
                Some(s.clone()),
                "{s:?}"
            );
            let words = expand_words(&escaped, &env, '\\').unwrap_or_default();
            assert!(
                words.len() <= 1,
                "escaped blanks do not split: {s:?} -> {words:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = format!("{}x{}", "${A:-".repeat(100_000), "}".repeat(100_000));
        assert!(word(&deep).is_err());
        let ok_depth = format!("{}x{}", "${A:-".repeat(50), "}".repeat(50));
        assert_eq!(word(&ok_depth).ok().as_deref(), Some("x"));
    }

    #[test]
    fn raw_modes_keep_quotes_and_unset_variables() {
        let lex = Lexer {
            raw_quotes: true,
            raw_escapes: true,
            skip_unset_env: true,
            ..Lexer::new('\\')
        };
        let (s, _) = lex.process("'a'\"$NOPE\"\\x${NOPE:-y}", &env).unwrap();
        assert_eq!(s, "'a'\"$NOPE\"\\x${NOPE:-y}");
    }
}
