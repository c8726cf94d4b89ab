//! Shell patterns (`*`, `?`, `\x`) for `${v#p}`, `${v%p}` and `${v/p/r}`.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Star,
    Any,
    Char(char),
}

#[derive(Debug)]
pub(crate) struct Pattern {
    tokens: Vec<Token>,
}

impl Pattern {
    /// Reads a pattern whose escape characters are still in place. `\}` and `\/` stand for
    /// the character itself; `\*`, `\?` and `\\` for a literal; other escapes are errors.
    pub fn parse(pattern: &str) -> Result<Pattern, String> {
        let mut tokens = Vec::new();
        let mut chars = pattern.chars().peekable();
        while let Some(c) = chars.next() {
            tokens.push(match c {
                '*' => Token::Star,
                '?' => Token::Any,
                '\\' => match chars.next() {
                    Some(c @ ('}' | '/' | '*' | '?' | '\\')) => Token::Char(c),
                    Some(c) => return Err(format!("invalid escape '\\{c}'")),
                    None => return Err("invalid escape at end of pattern".into()),
                },
                c => Token::Char(c),
            });
        }
        Ok(Pattern { tokens })
    }

    /// For every end position `e`, whether the pattern matches `text[start..e]`.
    fn ends(&self, text: &[char], start: usize) -> Vec<bool> {
        let n = text.len();
        let mut cur = vec![false; n + 1];
        cur[start] = true;
        for token in &self.tokens {
            let mut next = vec![false; n + 1];
            match token {
                Token::Star => {
                    if let Some(first) = cur.iter().position(|b| *b) {
                        next[first..].iter_mut().for_each(|b| *b = true);
                    }
                }
                Token::Any => (0..n).filter(|&i| cur[i]).for_each(|i| next[i + 1] = true),
                Token::Char(c) => (0..n)
                    .filter(|&i| cur[i] && text[i] == *c)
                    .for_each(|i| next[i + 1] = true),
            }
            cur = next;
        }
        cur
    }

    /// `${v#p}` (shortest) and `${v##p}` (longest): the value without a matching prefix.
    pub fn trim_prefix(&self, value: &str, greedy: bool) -> String {
        let text: Vec<char> = value.chars().collect();
        let ends = self.ends(&text, 0);
        let mut matches = (0..=text.len()).filter(|&e| ends[e]);
        let end = if greedy {
            matches.next_back()
        } else {
            matches.next()
        };
        match end {
            Some(e) => text[e..].iter().collect(),
            None => value.to_string(),
        }
    }

    /// `${v%p}` (shortest) and `${v%%p}` (longest): the value without a matching suffix.
    /// Matched as a prefix of the reversed value with the reversed pattern, in one pass.
    pub fn trim_suffix(&self, value: &str, greedy: bool) -> String {
        let mut text: Vec<char> = value.chars().collect();
        text.reverse();
        let reversed = Pattern {
            tokens: self.tokens.iter().rev().copied().collect(),
        };
        let ends = reversed.ends(&text, 0);
        let n = text.len();
        let mut lengths = (0..=n).filter(|&e| ends[e]);
        let len = if greedy {
            lengths.next_back()
        } else {
            lengths.next()
        };
        match len {
            Some(len) => text[len..].iter().rev().collect(),
            None => value.to_string(),
        }
    }

    /// `${v/p/r}` and `${v//p/r}`: the leftmost (each) longest match replaced.
    pub fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let text: Vec<char> = value.chars().collect();
        let n = text.len();
        let mut out = String::new();
        let mut pos = 0;
        let mut last_match_end = None;
        while pos <= n {
            let found = (pos..=n).find_map(|s| {
                let ends = self.ends(&text, s);
                (s..=n).rev().find(|&e| ends[e]).map(|e| (s, e))
            });
            let Some((s, e)) = found else { break };
            // Like Go's regexp: an empty match right after a previous match does not count.
            if s == e && last_match_end == Some(s) {
                if s < n {
                    out.push(text[s]);
                }
                pos = s + 1;
                continue;
            }
            out.extend(&text[pos..s]);
            out.push_str(replacement);
            last_match_end = Some(e);
            if e == s {
                if s < n {
                    out.push(text[s]);
                }
                pos = s + 1;
            } else {
                pos = e;
            }
            if !all {
                break;
            }
        }
        if pos <= n {
            out.extend(&text[pos..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn p(s: &str) -> Pattern {
        Pattern::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn prefix_and_suffix_pick_shortest_or_longest() {
        assert_eq!(p("*/").trim_prefix("a/b/c", false), "b/c");
        assert_eq!(p("*/").trim_prefix("a/b/c", true), "c");
        assert_eq!(p("/*").trim_suffix("a/b/c", false), "a/b");
        assert_eq!(p("/*").trim_suffix("a/b/c", true), "a");
        assert_eq!(p("x").trim_prefix("abc", true), "abc");
        assert_eq!(p("").trim_suffix("abc", true), "abc");
        assert_eq!(p("\\*").trim_prefix("*a", false), "a");
    }

    #[test]
    fn replace_first_or_all() {
        assert_eq!(p("o").replace("foo boo", "0", false), "f0o boo");
        assert_eq!(p("o").replace("foo boo", "0", true), "f00 b00");
        assert_eq!(p("o*").replace("foo boo", "X", false), "fX");
        assert_eq!(p("?").replace("ab", "-", true), "--");
        assert_eq!(p("z").replace("ab", "-", true), "ab");
    }

    #[test]
    fn invalid_escapes_are_errors() {
        assert!(Pattern::parse("\\x").is_err());
        assert!(Pattern::parse("a\\").is_err());
    }
}
