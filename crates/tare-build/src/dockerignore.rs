//! `.dockerignore` patterns, matched with Docker's rules.
//!
//! A pattern names paths from the context root (a leading `/` changes nothing). `*` matches
//! within one path component, `?` one character other than `/`, `[...]` a class, `\` escapes,
//! `**` any number of components (zero included). A pattern that matches a directory also
//! matches everything below it. Lines starting with `!` re-include what they match; the last
//! matching line wins. Lines starting with `#` are comments.
//!
//! Written by hand rather than with a glob crate because Docker's `**` and parent-directory
//! rules differ from gitignore's and from shell globbing; the same matcher serves COPY
//! wildcards through [`match_component`].

pub use crate::error::PatternError;

/// One parsed pattern line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    tokens: Vec<Token>,
    exclusion: bool,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters other than `/`.
    Star,
    /// `?`: one character other than `/`.
    One,
    /// `**` followed by more pattern: any run of whole components ending in `/`, or nothing.
    AnyDirs,
    /// `**` at the end: anything at all.
    AnyTail,
    Class(Class),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    negated: bool,
    ranges: Vec<(char, char)>,
}

impl Class {
    fn matches(&self, c: char) -> bool {
        let inside = self.ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi);
        inside != self.negated
    }
}

/// The parsed `.dockerignore` of a context.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parses `.dockerignore` text: one pattern a line, `#` lines are comments.
    pub fn parse(text: &str) -> Result<DockerIgnore, PatternError> {
        let lines = text.lines().filter(|l| !l.trim().starts_with('#'));
        DockerIgnore::from_patterns(lines)
    }

    /// Patterns given one by one (`COPY --exclude`): no comments, `!` still re-includes.
    pub fn from_patterns<'p>(
        lines: impl IntoIterator<Item = &'p str>,
    ) -> Result<DockerIgnore, PatternError> {
        let mut patterns = Vec::new();
        for line in lines {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exclusion, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            if body.is_empty() {
                continue;
            }
            let cleaned = clean(body);
            let cleaned = cleaned.strip_prefix('/').unwrap_or(&cleaned).to_string();
            if cleaned.is_empty() {
                continue;
            }
            let tokens = compile(&cleaned).map_err(|reason| PatternError {
                pattern: line.to_string(),
                reason,
            })?;
            patterns.push(Pattern {
                tokens,
                exclusion,
                text: cleaned,
            });
        }
        Ok(DockerIgnore { patterns })
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether an exception pattern could match below the directory `dir` (an excluded
    /// directory is then walked): one of them starts with `dir/`, or one holds a wildcard,
    /// as BuildKit's fsutil decides.
    pub fn may_include_below(&self, dir: &str) -> bool {
        let exceptions = || self.patterns.iter().filter(|p| p.exclusion);
        if exceptions().any(|p| has_wildcard(&p.text)) {
            return true;
        }
        let dir = format!("{}/", dir.trim_matches('/'));
        exceptions().any(|p| format!("{}/", p.text).starts_with(&dir))
    }

    /// Whether `path` (relative to the context root, `/`-separated, no leading `./`) is
    /// ignored: by a pattern matching it, or one of its parent directories.
    pub fn is_ignored(&self, path: &str) -> bool {
        let path = path.trim_start_matches("./").trim_matches('/');
        if path.is_empty() {
            return false;
        }
        let parents: Vec<&str> = path.match_indices('/').map(|(i, _)| &path[..i]).collect();
        let mut matched = false;
        for pattern in &self.patterns {
            // An inclusion line cannot change an already ignored path, nor an exclusion line
            // a path that is not ignored.
            if pattern.exclusion != matched {
                continue;
            }
            let hit = matches(&pattern.tokens, path)
                || parents
                    .iter()
                    .any(|parent| matches(&pattern.tokens, parent));
            if hit {
                matched = !pattern.exclusion;
            }
        }
        matched
    }
}

pub use tare_layer::path::clean;

/// Patterns applied to a walk as BuildKit's fsutil applies them, both to the context
/// (`.dockerignore`) and below each COPY source (`--exclude`):
///
/// - an excluded file is left out;
/// - an excluded directory is skipped with everything below it, unless an exception (`!`)
///   pattern could match below it ([`DockerIgnore::may_include_below`]): then it is walked,
///   and it exists only if something below it is included (it is never there empty).
#[derive(Debug, Default)]
pub struct Filter {
    ignore: DockerIgnore,
    /// Excluded directories that were walked: whether something below them is included.
    kept_dirs: std::sync::Mutex<std::collections::HashMap<String, bool>>,
}

impl Filter {
    pub fn new(ignore: DockerIgnore) -> Filter {
        Filter {
            ignore,
            kept_dirs: Default::default(),
        }
    }

    /// Whether `rel` (relative to where the patterns apply; a directory when `is_dir`) is
    /// left out. `holds_any(dir)` tells whether the walk of an excluded directory that may
    /// hold exceptions keeps anything (it calls back into the tree, which calls this again
    /// for what is below).
    pub fn hidden(
        &self,
        rel: &str,
        is_dir: bool,
        holds_any: &dyn Fn(&str) -> Result<bool, crate::error::Error>,
    ) -> Result<bool, crate::error::Error> {
        if rel.is_empty() || self.ignore.is_empty() {
            return Ok(false);
        }
        // An ancestor that is excluded and not walked hides everything below it.
        for (i, _) in rel.match_indices('/') {
            let ancestor = &rel[..i];
            if self.ignore.is_ignored(ancestor) && !self.ignore.may_include_below(ancestor) {
                return Ok(true);
            }
        }
        if !self.ignore.is_ignored(rel) {
            return Ok(false);
        }
        if !is_dir || !self.ignore.may_include_below(rel) {
            return Ok(true);
        }
        let known = self.kept_dirs.lock().ok().and_then(|m| m.get(rel).copied());
        let kept = match known {
            Some(k) => k,
            None => {
                let k = holds_any(rel)?;
                if let Ok(mut m) = self.kept_dirs.lock() {
                    m.insert(rel.to_string(), k);
                }
                k
            }
        };
        Ok(!kept)
    }
}

fn compile(pattern: &str) -> Result<Vec<Token>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i >= chars.len() {
                    tokens.push(Token::AnyTail);
                } else {
                    tokens.push(Token::AnyDirs);
                }
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::One),
            '\\' => {
                let next = chars.get(i).ok_or("trailing backslash")?;
                i += 1;
                tokens.push(Token::Literal(*next));
            }
            '[' => {
                let (class, used) = compile_class(&chars[i..])?;
                i += used;
                tokens.push(Token::Class(class));
            }
            c => tokens.push(Token::Literal(c)),
        }
    }
    Ok(tokens)
}

/// Parses a class after its `[`; returns it and the characters used (with the `]`).
fn compile_class(chars: &[char]) -> Result<(Class, usize), &'static str> {
    let mut i = 0;
    // Only `^` negates, as in Go's filepath.Match and regexp (BuildKit's matchers): `[!b]`
    // is the class of `!` and `b`, unlike a shell's.
    let negated = chars.first() == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars.get(i).ok_or("unclosed [")?;
        i += 1;
        if c == ']' && !first {
            break;
        }
        first = false;
        let lo = if c == '\\' {
            let e = *chars.get(i).ok_or("unclosed [")?;
            i += 1;
            e
        } else {
            c
        };
        let hi = if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&n| n != ']') {
            let mut h = chars[i + 1];
            i += 2;
            if h == '\\' {
                h = *chars.get(i).ok_or("unclosed [")?;
                i += 1;
            }
            h
        } else {
            lo
        };
        if hi < lo {
            return Err("bad range in [");
        }
        ranges.push((lo, hi));
    }
    Ok((Class { negated, ranges }, i))
}

/// Matches a whole `/`-separated path against compiled tokens.
fn matches(tokens: &[Token], path: &str) -> bool {
    let chars: Vec<char> = path.chars().collect();
    match_at(tokens, &chars)
}

fn match_at(tokens: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Literal(c) => s.first() == Some(c) && match_at(rest, &s[1..]),
        Token::One => s.first().is_some_and(|&c| c != '/') && match_at(rest, &s[1..]),
        Token::Class(class) => {
            s.first().is_some_and(|&c| c != '/' && class.matches(c)) && match_at(rest, &s[1..])
        }
        Token::Star => {
            let mut i = 0;
            loop {
                if match_at(rest, &s[i..]) {
                    return true;
                }
                if i >= s.len() || s[i] == '/' {
                    return false;
                }
                i += 1;
            }
        }
        Token::AnyTail => true,
        Token::AnyDirs => {
            // Nothing, or any prefix that ends just after a `/`.
            if match_at(rest, s) {
                return true;
            }
            s.iter()
                .enumerate()
                .filter(|(_, &c)| c == '/')
                .any(|(i, _)| match_at(rest, &s[i + 1..]))
        }
    }
}

/// Go's `filepath.Match` for one pattern against one name (`/` never matched by `*` or `?`),
/// used for COPY wildcards component by component.
pub fn match_component(pattern: &str, name: &str) -> Result<bool, PatternError> {
    let tokens = compile(pattern).map_err(|reason| PatternError {
        pattern: pattern.to_string(),
        reason,
    })?;
    // In filepath.Match `**` is just two stars.
    let tokens: Vec<Token> = tokens
        .into_iter()
        .flat_map(|t| match t {
            Token::AnyDirs | Token::AnyTail => vec![Token::Star, Token::Star],
            t => vec![t],
        })
        .collect();
    Ok(matches(&tokens, name))
}

/// True when `s` holds a wildcard character (`*`, `?`, `[`).
pub fn has_wildcard(s: &str) -> bool {
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ignored(patterns: &str, path: &str) -> bool {
        DockerIgnore::parse(patterns)
            .expect("patterns")
            .is_ignored(path)
    }

    #[test]
    fn star_stays_within_one_component() {
        assert!(ignored("*.log", "a.log"));
        assert!(!ignored("*.log", "logs/a.log"));
        assert!(ignored("*/*.log", "logs/a.log"));
    }

    #[test]
    fn double_star_matches_any_depth_including_zero() {
        assert!(ignored("**/*.tmp", "x.tmp"));
        assert!(ignored("**/*.tmp", "deep/x/y.tmp"));
        assert!(ignored("deep/**", "deep/x/y.tmp"));
        assert!(ignored("a/**/b", "a/b"));
        assert!(ignored("a/**/b", "a/x/y/b"));
        assert!(!ignored("a/**/b", "a/xb"));
    }

    #[test]
    fn a_matching_directory_ignores_its_contents() {
        assert!(ignored("logs", "logs/a.log"));
        assert!(ignored("/logs", "logs/sub/a.log"));
        assert!(!ignored("logs", "mylogs/a.log"));
    }

    #[test]
    fn exceptions_and_last_match_wins() {
        let p = "logs/*.log\n!logs/important.log\n";
        assert!(ignored(p, "logs/a.log"));
        assert!(!ignored(p, "logs/important.log"));
        let p = "!keep\n*\n";
        assert!(ignored(p, "keep"));
        let p = "*\n!keep\n";
        assert!(!ignored(p, "keep"));
        assert!(ignored(p, "other"));
    }

    #[test]
    fn comments_blank_lines_and_cleaning() {
        let p = "# comment\n\n  ./secret.env  \nfoo/../bar\n";
        assert!(ignored(p, "secret.env"));
        assert!(ignored(p, "bar"));
        assert!(!ignored(p, "foo"));
    }

    #[test]
    fn classes_and_escapes() {
        assert!(ignored("file[0-9].txt", "file7.txt"));
        assert!(!ignored("file[0-9].txt", "filex.txt"));
        assert!(ignored("file[^0-9].txt", "filex.txt"));
        assert!(ignored("a[!b]c", "abc"));
        assert!(ignored("a[!b]c", "a!c"));
        assert!(!ignored("a[!b]c", "axc"));
        assert!(match_component("a[!b]c", "abc").expect("ok"));
        assert!(!match_component("a[!b]c", "axc").expect("ok"));
        assert!(ignored("a\\*b", "a*b"));
        assert!(!ignored("a\\*b", "axb"));
        assert!(DockerIgnore::parse("a[b").is_err());
    }

    #[test]
    fn component_matching_for_copy_wildcards() {
        assert!(match_component("dat?.bin", "data.bin").expect("ok"));
        assert!(!match_component("dat?.bin", "other.bin").expect("ok"));
        assert!(match_component("*.txt", "a.txt").expect("ok"));
        assert!(has_wildcard("*.txt"));
        assert!(!has_wildcard("a\\*.txt"));
    }

    proptest! {
        #[test]
        fn a_literal_pattern_matches_itself_and_its_children(
            parts in proptest::collection::vec("[a-z0-9_.-]{1,6}", 1..4),
            child in "[a-z]{1,5}",
        ) {
            let path = parts.join("/");
            prop_assume!(!parts.iter().any(|p| p == "." || p == ".."));
            let ig = DockerIgnore::parse(&path).expect("literal");
            prop_assert!(ig.is_ignored(&path));
            let below = format!("{path}/{child}");
            prop_assert!(ig.is_ignored(&below));
            let negated = DockerIgnore::parse(&format!("{path}\n!{path}")).expect("both");
            prop_assert!(!negated.is_ignored(&path));
        }

        #[test]
        fn double_star_prefix_matches_at_every_depth(
            dirs in proptest::collection::vec("[a-z]{1,4}", 0..4),
            name in "[a-z]{1,6}",
        ) {
            let mut path = dirs.join("/");
            if !path.is_empty() { path.push('/'); }
            path.push_str(&name);
            path.push_str(".tmp");
            let ig = DockerIgnore::parse("**/*.tmp").expect("pattern");
            prop_assert!(ig.is_ignored(&path));
            let other = path.replace(".tmp", ".txt");
            prop_assert!(!ig.is_ignored(&other));
        }

        #[test]
        fn matching_never_panics(pattern in "[a-z*?/!\\[\\]\\\\^-]{0,12}", path in "[a-z/]{0,12}") {
            if let Ok(ig) = DockerIgnore::parse(&pattern) {
                let _ = ig.is_ignored(&path);
            }
        }
    }
}
