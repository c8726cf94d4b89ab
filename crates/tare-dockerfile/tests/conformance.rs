//! BuildKit's parser test data (../shared/conformance/buildkit-parser, beside the repository):
//! every `testfiles` case must dump byte for byte like its `result`, every
//! `testfiles-negative` case must be rejected, and every `A`/`U` line of `envVarTest` and
//! every line of `wordsTest` must expand as listed. Skips (with a note) only when the data
//! directory is absent; the crate's unit tests cover the same rules on their own.

use std::path::{Path, PathBuf};

use tare_dockerfile::{expand_word, expand_words, parse};

fn data_dir() -> Option<PathBuf> {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/buildkit-parser");
    dir.is_dir().then_some(dir)
}

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    out.sort();
    out
}

fn read(path: &Path) -> String {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn buildkit_parser_conformance() {
    let Some(dir) = data_dir() else {
        eprintln!("skipping: ../shared/conformance/buildkit-parser not found");
        return;
    };
    let mut failures = Vec::new();
    let mut counts = [(0, 0); 4];

    for case in cases(&dir.join("testfiles")) {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let want = read(&case.join("result"));
        match parse(&read(&case.join("Dockerfile")), "Dockerfile") {
            Ok(ast) if ast.dump() == want => counts[0].0 += 1,
            Ok(ast) => {
                counts[0].1 += 1;
                failures.push(format!("testfiles/{name}: got\n{}want\n{want}", ast.dump()));
            }
            Err(e) => {
                counts[0].1 += 1;
                failures.push(format!("testfiles/{name}: {e}"));
            }
        }
    }

    for case in cases(&dir.join("testfiles-negative")) {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = read(&case.join("Dockerfile"));
        let rejected = match parse(&text, "Dockerfile") {
            Err(_) => true,
            Ok(ast) => tare_dockerfile::evaluate(&ast, &Default::default(), None).is_err(),
        };
        if rejected {
            counts[1].0 += 1;
        } else {
            counts[1].1 += 1;
            failures.push(format!("testfiles-negative/{name}: accepted"));
        }
    }

    let env = |name: &str| match name {
        "PWD" => Some("/home".to_string()),
        "SHELL" => Some("bash".to_string()),
        "KOREAN" => Some("한국어".to_string()),
        "NULL" => Some(String::new()),
        _ => None,
    };
    for line in read(&dir.join("envVarTest")).lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.splitn(3, '|').collect();
        let [platform, input, expected] = fields[..] else {
            continue;
        };
        if !matches!(platform.trim(), "A" | "U") {
            continue;
        }
        let (input, expected) = (input.trim(), expected.trim());
        let got = expand_word(input, &env, '\\');
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(g), e) => e != "error" && g == e,
            _ => false,
        };
        if ok {
            counts[2].0 += 1;
        } else {
            counts[2].1 += 1;
            failures.push(format!(
                "envVarTest {input:?}: got {got:?}, want {expected:?}"
            ));
        }
    }

    let mut vars: Vec<(String, String)> = Vec::new();
    for line in read(&dir.join("wordsTest")).lines() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(assignment) = line.strip_prefix("ENV ") {
            let assignment = assignment.trim_start();
            if let Some((k, v)) = assignment.split_once('=') {
                vars.push((k.to_string(), v.to_string()));
            }
            continue;
        }
        let Some((input, expected)) = line.split_once('|') else {
            continue;
        };
        let (input, expected) = (input.trim(), expected.trim_start());
        let lookup = |n: &str| {
            vars.iter()
                .rev()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
        };
        let got = expand_words(input, &lookup, '\\');
        let ok = match &got {
            Err(_) => expected == "error",
            Ok(words) => expected != "error" && words.join(",") == expected,
        };
        if ok {
            counts[3].0 += 1;
        } else {
            counts[3].1 += 1;
            failures.push(format!(
                "wordsTest {input:?}: got {got:?}, want {expected:?}"
            ));
        }
    }

    for (label, (pass, fail)) in ["testfiles", "testfiles-negative", "envVarTest", "wordsTest"]
        .iter()
        .zip(counts)
    {
        eprintln!("conformance {label}: {pass} passed, {fail} failed");
    }
    assert!(
        failures.is_empty(),
        "{} conformance failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
