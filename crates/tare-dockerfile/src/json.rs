//! JSON (exec) form arguments: `["a", "b"]`, decoded with the rules of Go's `encoding/json`,
//! which BuildKit uses. Any syntax error sends the caller back to the shell form; a valid
//! array holding something other than strings is an error.

/// The outcome of reading a JSON array of strings.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JsonArgs {
    Strings(Vec<String>),
    /// Not JSON at all (or not an array): use the shell form.
    Invalid,
    /// Valid JSON, but an element is not a string.
    NotStrings,
}

pub(crate) fn parse_string_array(text: &str) -> JsonArgs {
    let text = text.trim_start();
    if !text.starts_with('[') {
        return JsonArgs::Invalid;
    }
    let mut p = Reader {
        s: text.as_bytes(),
        text,
        i: 0,
    };
    let mut out = Vec::new();
    let mut all_strings = true;
    p.i = 1;
    p.ws();
    if p.peek() == Some(b']') {
        p.i += 1;
    } else {
        loop {
            p.ws();
            if p.peek() == Some(b'"') {
                match p.string() {
                    Some(s) => out.push(s),
                    None => return JsonArgs::Invalid,
                }
            } else {
                all_strings = false;
                if !p.skip_value() {
                    return JsonArgs::Invalid;
                }
            }
            p.ws();
            match p.peek() {
                Some(b',') => p.i += 1,
                Some(b']') => {
                    p.i += 1;
                    break;
                }
                _ => return JsonArgs::Invalid,
            }
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return JsonArgs::Invalid;
    }
    if all_strings {
        JsonArgs::Strings(out)
    } else {
        JsonArgs::NotStrings
    }
}

const MAX_DEPTH: usize = 10_000;

struct Reader<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn hex4(&mut self) -> Option<u32> {
        let digits = self.text.get(self.i..self.i + 4)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        self.i += 4;
        u32::from_str_radix(digits, 16).ok()
    }

    /// A string starting at the opening quote. Lone surrogates become U+FFFD, as in Go.
    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.i += 1;
            }
            out.push_str(self.text.get(start..self.i)?);
            match self.peek()? {
                b'"' => {
                    self.i += 1;
                    return Some(out);
                }
                b'\\' => {
                    self.i += 1;
                    let c = self.peek()?;
                    self.i += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let u = self.hex4()?;
                            if (0xd800..0xdc00).contains(&u) && self.s[self.i..].starts_with(b"\\u")
                            {
                                let save = self.i;
                                self.i += 2;
                                match self.hex4() {
                                    Some(low) if (0xdc00..0xe000).contains(&low) => {
                                        let c = 0x10000 + ((u - 0xd800) << 10) + (low - 0xdc00);
                                        out.push(char::from_u32(c).unwrap_or('\u{fffd}'));
                                        continue;
                                    }
                                    _ => self.i = save,
                                }
                            }
                            out.push(char::from_u32(u).unwrap_or('\u{fffd}'));
                        }
                        _ => return None,
                    }
                }
                _ => return None,
            }
        }
    }

    fn number(&mut self) -> bool {
        let digits = |r: &mut Reader<'_>| {
            let start = r.i;
            while matches!(r.peek(), Some(b'0'..=b'9')) {
                r.i += 1;
            }
            r.i > start
        };
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                digits(self);
            }
            _ => return false,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !digits(self) {
                return false;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !digits(self) {
                return false;
            }
        }
        true
    }

    /// Skips any JSON value, iteratively so that deep nesting cannot overflow the stack.
    fn skip_value(&mut self) -> bool {
        // Each entry: true for an object, false for an array.
        let mut stack: Vec<bool> = Vec::new();
        loop {
            self.ws();
            // A value.
            match self.peek() {
                Some(b'"') => {
                    if self.string().is_none() {
                        return false;
                    }
                }
                Some(b'{') => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b'}') {
                        self.i += 1;
                    } else {
                        stack.push(true);
                        if stack.len() >= MAX_DEPTH {
                            return false;
                        }
                        if !self.object_key() {
                            return false;
                        }
                        continue;
                    }
                }
                Some(b'[') => {
                    self.i += 1;
                    self.ws();
                    if self.peek() == Some(b']') {
                        self.i += 1;
                    } else {
                        stack.push(false);
                        // Go's decoder gives up beyond 10,000 levels: a syntax error.
                        if stack.len() >= MAX_DEPTH {
                            return false;
                        }
                        continue;
                    }
                }
                Some(b't') if self.s[self.i..].starts_with(b"true") => self.i += 4,
                Some(b'f') if self.s[self.i..].starts_with(b"false") => self.i += 5,
                Some(b'n') if self.s[self.i..].starts_with(b"null") => self.i += 4,
                Some(b'-' | b'0'..=b'9') => {
                    if !self.number() {
                        return false;
                    }
                }
                _ => return false,
            }
            // After a value: close containers or move to the next element.
            loop {
                let Some(&object) = stack.last() else {
                    return true;
                };
                self.ws();
                match self.peek() {
                    Some(b',') => {
                        self.i += 1;
                        if object {
                            self.ws();
                            if !self.object_key() {
                                return false;
                            }
                        }
                        break;
                    }
                    Some(b'}') if object => {
                        self.i += 1;
                        stack.pop();
                    }
                    Some(b']') if !object => {
                        self.i += 1;
                        stack.pop();
                    }
                    _ => return false,
                }
            }
        }
    }

    /// `"key":` inside an object.
    fn object_key(&mut self) -> bool {
        if self.peek() != Some(b'"') || self.string().is_none() {
            return false;
        }
        self.ws();
        if self.peek() != Some(b':') {
            return false;
        }
        self.i += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_string_array, JsonArgs};

    fn strings(v: &[&str]) -> JsonArgs {
        JsonArgs::Strings(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn valid_arrays_of_strings_decode() {
        assert_eq!(parse_string_array("[]"), strings(&[]));
        assert_eq!(
            parse_string_array(" [ \"a\" ,\t\"b\" ] \t"),
            strings(&["a", "b"])
        );
        assert_eq!(
            parse_string_array(r#"["\" \\ \/ \b \f \n \r \t \u0000 \u2665 \ud83d\ude00"]"#),
            strings(&["\" \\ / \u{8} \u{c} \n \r \t \u{0} ♥ 😀"])
        );
        assert_eq!(
            parse_string_array(r#"["\ud800x"]"#),
            strings(&["\u{fffd}x"])
        );
    }

    #[test]
    fn syntax_errors_fall_back_to_shell_form() {
        for text in [
            "['a']",
            "[\"a\"",
            "[\"a]",
            "[\"a\",]",
            "[\"a\"] x",
            "[\"\\x\"]",
            "[\"a\tb\"]",
            "[01]",
            "[1.]",
            "[{\"a\" 1}]",
            "{}",
            "x",
        ] {
            assert_eq!(parse_string_array(text), JsonArgs::Invalid, "{text}");
        }
    }

    #[test]
    fn non_string_elements_are_rejected() {
        for text in [
            "[1]",
            "[\"a\", [\"b\"]]",
            "[null]",
            "[{\"a\": [1, {}]}, true]",
            "[-0.5e+3]",
        ] {
            assert_eq!(parse_string_array(text), JsonArgs::NotStrings, "{text}");
        }
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let deep = format!("[{}{}]", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(parse_string_array(&deep), JsonArgs::Invalid);
        let nested = format!("[{}{}]", "[".repeat(100), "]".repeat(100));
        assert_eq!(parse_string_array(&nested), JsonArgs::NotStrings);
    }
}
