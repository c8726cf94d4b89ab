//! Reading shell scripts the way the rules need: simple commands, programs and their
//! subcommands, package arguments, and what a path or tool name looks like.

/// A command's program, its arguments, and its subcommand (the first argument that is not
/// an option: `install` in `apt-get -y install x`).
pub(super) fn program(c: &[String]) -> Option<(&str, &[String], Option<&str>)> {
    let (prog, args) = c.split_first()?;
    let sub = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str);
    Some((prog.as_str(), args, sub))
}

/// Whether a script mentions an absolute path as a word (`of=/bigfile`, `-O /tmp/x`).
pub(super) fn mentions(script: &str, path: &str) -> bool {
    let path = path.trim_end_matches("/*").trim_end_matches('/');
    if path.is_empty() || path == "/" || path == "." {
        return false;
    }
    let is_boundary_before = |c: Option<char>| {
        c.is_none_or(|c| c.is_whitespace() || matches!(c, '=' | '"' | '\'' | '>' | '(' | ':'))
    };
    let is_boundary_after = |c: Option<char>| {
        c.is_none_or(|c| c.is_whitespace() || matches!(c, '"' | '\'' | ';' | '/' | '&' | '|' | ')'))
    };
    let mut start = 0;
    while let Some(pos) = script[start..].find(path) {
        let at = start + pos;
        let before = script[..at].chars().next_back();
        let after = script[at + path.len()..].chars().next();
        if is_boundary_before(before) && is_boundary_after(after) {
            return true;
        }
        start = at + path.len().max(1);
        if start >= script.len() {
            break;
        }
    }
    false
}

/// Whether one path contains the other.
pub(super) fn related(a: &str, b: &str) -> bool {
    let a = a.trim_end_matches('/');
    let b = b.trim_end_matches("/*").trim_end_matches('/');
    if a.is_empty() || b.is_empty() {
        return false;
    }
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

/// The operands of a package manager subcommand (flags and their values left out).
pub(super) fn package_args(args: &[String], sub: &str) -> Vec<String> {
    let mut after = args.iter().skip_while(|a| a.as_str() != sub).skip(1);
    let mut out = Vec::new();
    while let Some(a) = after.next() {
        if a == "-o" || a == "-t" || a == "--target-release" || a == "--repository" || a == "-X" {
            after.next();
            continue;
        }
        if a.starts_with('-') || a.contains('=') && a.starts_with('-') {
            continue;
        }
        out.push(a.split(['=', ':']).next().unwrap_or(a).to_string());
    }
    out
}

pub(super) fn is_build_tool(pkg: &str) -> bool {
    const TOOLS: &[&str] = &[
        "build-essential",
        "gcc",
        "g++",
        "gcc-c++",
        "clang",
        "llvm",
        "make",
        "cmake",
        "build-base",
        "musl-dev",
        "golang",
        "golang-go",
        "go",
        "rustc",
        "cargo",
        "rustup",
        "default-jdk",
        "maven",
        "gradle",
        "autoconf",
        "automake",
        "libtool",
        "gfortran",
        "dotnet-sdk",
        "nodejs-dev",
        "python3-dev",
        "python-dev",
    ];
    TOOLS.contains(&pkg)
        || (pkg.starts_with("openjdk-") && pkg.contains("jdk") && !pkg.contains("jre"))
        || (pkg.starts_with("gcc-") && pkg[4..].chars().all(|c| c.is_ascii_digit()))
        || pkg.starts_with("dotnet-sdk")
        || pkg == "Development Tools"
}

/// An SDK image used as the only stage's base.
pub(super) fn build_tool_image(base: &str) -> Option<&'static str> {
    let name = base.rsplit('/').next().unwrap_or(base);
    let repo = name.split([':', '@']).next().unwrap_or(name);
    let tag = name.split_once(':').map(|(_, t)| t).unwrap_or("");
    match repo {
        "golang" => Some("the Go toolchain"),
        "rust" => Some("the Rust toolchain"),
        "gcc" => Some("the GCC toolchain"),
        "maven" => Some("Maven and a JDK"),
        "gradle" => Some("Gradle and a JDK"),
        "openjdk" | "eclipse-temurin" | "amazoncorretto" if !tag.contains("jre") => Some("a JDK"),
        "sdk" if base.contains("dotnet") => Some("the .NET SDK"),
        _ => None,
    }
}

pub(super) fn is_remote_archive(src: &str) -> bool {
    let lower = src.to_ascii_lowercase();
    if !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return false;
    }
    let path = lower.split(['?', '#']).next().unwrap_or(&lower);
    [
        ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz", ".tar.zst",
        ".zip", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar",
    ]
    .iter()
    .any(|ext| path.ends_with(ext))
}

/// The install command, if this simple command installs dependencies from a manifest.
pub(super) fn dependency_install(c: &[String]) -> Option<String> {
    let prog = c.first()?.as_str();
    let sub = c.get(1).map(String::as_str).unwrap_or("");
    let hit = match prog {
        "npm" => matches!(sub, "install" | "i" | "ci"),
        "yarn" => c.len() == 1 || matches!(sub, "install"),
        "pnpm" => matches!(sub, "install" | "i"),
        "pip" | "pip3" => {
            sub == "install"
                && c.iter()
                    .any(|a| a == "-r" || a.starts_with("--requirement") || a == "." || a == "-e")
        }
        "poetry" | "pipenv" | "bundle" | "composer" => sub == "install",
        "go" => c
            .get(1..3)
            .is_some_and(|s| s[0] == "mod" && s[1] == "download"),
        "cargo" => matches!(sub, "build" | "fetch" | "install"),
        "mvn" | "gradle" | "./gradlew" | "./mvnw" => true,
        "dotnet" => sub == "restore",
        _ => false,
    };
    hit.then(|| c.iter().take(3).cloned().collect::<Vec<_>>().join(" "))
}

/// `dir` resolved against the working directory (`/` when empty).
pub(super) fn resolve(workdir: &str, path: &str) -> String {
    tare_layer::path::clean_in(workdir, path)
}

/// Splits a shell script into simple commands (words with quotes removed), at `&&`, `||`,
/// `;`, `|`, `&` and newlines. Leading `VAR=value` assignments and `sudo` are dropped. This is
/// enough to recognise commands; it does not expand anything.
pub fn commands(script: &str) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = Vec::new();
    let mut cmd: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = script.chars().peekable();
    let end_word = |cmd: &mut Vec<String>, word: &mut String, in_word: &mut bool| {
        if *in_word {
            cmd.push(std::mem::take(word));
            *in_word = false;
        }
    };
    let finish = |out: &mut Vec<Vec<String>>, cmd: &mut Vec<String>| {
        let mut c = std::mem::take(cmd);
        while c.first().is_some_and(|w| {
            w == "sudo" || (w.contains('=') && !w.starts_with('-') && !w.starts_with('='))
        }) {
            c.remove(0);
        }
        if !c.is_empty() {
            out.push(c);
        }
    };
    while let Some(ch) = chars.next() {
        match ch {
            '\'' => {
                in_word = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    word.push(c);
                }
            }
            '"' => {
                in_word = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                word.push(n);
                            }
                        }
                        c => word.push(c),
                    }
                }
            }
            '\\' => match chars.next() {
                Some('\n') | None => {}
                Some(c) => {
                    in_word = true;
                    word.push(c);
                }
            },
            '#' if !in_word => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                end_word(&mut cmd, &mut word, &mut in_word);
                finish(&mut out, &mut cmd);
            }
            ';' | '&' | '|' | '\n' | '(' | ')' => {
                end_word(&mut cmd, &mut word, &mut in_word);
                finish(&mut out, &mut cmd);
            }
            c if c.is_whitespace() => end_word(&mut cmd, &mut word, &mut in_word),
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    end_word(&mut cmd, &mut word, &mut in_word);
    finish(&mut out, &mut cmd);
    out
}
