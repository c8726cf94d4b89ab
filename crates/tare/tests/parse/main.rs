//! `tare debug parse FILE`: the parse tree in BuildKit's test notation, and located errors.

#[path = "../util/mod.rs"]
mod util;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use util::TestContext;

mod snippets;

#[test]
fn parse_prints_one_buildkit_line_per_instruction() {
    let cx = TestContext::new();
    let file = cx.write(
        "Dockerfile",
        "# syntax=docker/dockerfile:1\n\
         ARG BASE=alpine\n\
         FROM --platform=$BUILDPLATFORM ${BASE} AS build\n\
         # a comment\n\
         RUN --mount=type=cache,target=/c echo a \\\n  # inside a continuation\n  && echo b\n\
         COPY --chown=1:1 [\"a b\", \"/dst/\"]\n\
         ENV A=1 B=\"two words\"\n\
         ENV LEGACY value with spaces\n\
         CMD [\"sh\", \"-c\", \"echo \\\"hi\\\"\"]\n\
         ONBUILD RUN make\n\
         HEALTHCHECK --interval=5s CMD curl -f http://localhost/\n\
         RUN <<EOF\n\
         echo from heredoc\n\
         EOF\n",
    );
    let out = cx.ok(&["debug", "parse", file.to_str().expect("utf-8 path")]);
    assert_eq!(
        out,
        "(arg \"BASE=alpine\")\n\
         (from [\"--platform=$BUILDPLATFORM\"] \"${BASE}\" \"AS\" \"build\")\n\
         (run [\"--mount=type=cache,target=/c\"] \"echo a   && echo b\")\n\
         (copy [\"--chown=1:1\"] \"a b\" \"/dst/\")\n\
         (env \"A\" \"1\" \"=\" \"B\" \"\\\"two words\\\"\" \"=\")\n\
         (env \"LEGACY\" \"value with spaces\" \"\")\n\
         (cmd \"sh\" \"-c\" \"echo \\\"hi\\\"\")\n\
         (onbuild (run \"make\"))\n\
         (healthcheck [\"--interval=5s\"] \"CMD\" \"curl -f http://localhost/\")\n\
         (run \"<<EOF\")\n"
    );
}

#[test]
fn parse_reads_stdin_and_honours_the_escape_directive() {
    let cx = TestContext::new();
    let mut child = cx
        .tare()
        .args(["debug", "parse", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tare");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"# escape=`\nFROM scratch\nCOPY a `\n  c:\\dir\\\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait for tare");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "(from \"scratch\")\n(copy \"a\" \"c:\\\\dir\\\\\")\n"
    );
}

#[test]
fn misspelt_instruction_exits_1_with_location_suggestion_and_snippet() {
    let cx = TestContext::new();
    let file = cx.write("Dockerfile", "FROM alpine\n  FRUM x\nRUN y\n");
    let path = file.to_str().expect("utf-8 path");
    let err = cx.fails(&["debug", "parse", path]);
    assert!(
        err.starts_with(&format!(
            "error: {path}:2:3: unknown instruction: FRUM (did you mean FROM?)\n"
        )),
        "{err}"
    );
    assert!(
        err.contains(" 2 │   FRUM x"),
        "the offending line is shown: {err}"
    );
    assert_eq!(cx.run(&["debug", "parse", path]).status.code(), Some(1));
}

#[test]
fn syntax_errors_exit_1_with_a_located_message() {
    let cx = TestContext::new();
    for (text, line_and_message) in [
        ("FROM a\nENV PATH\n", ":2:1: ENV must have two arguments"),
        ("FROM a\nCMD [\"a\", [\"b\"]]\n", ":2:1: json"),
        ("# escape=x\nFROM a\n", ":1:1: invalid escape token"),
        ("FROM a\nRUN <<EOF\nno end\n", ":2:1: unterminated heredoc"),
        ("# only a comment\n", ":1:1: file with no instructions"),
        ("", ":1:1: file with no instructions"),
    ] {
        let file = cx.write("Dockerfile", text);
        let path = file.to_str().expect("utf-8 path");
        let err = cx.fails(&["debug", "parse", path]);
        assert!(
            err.starts_with(&format!("error: {path}{line_and_message}")),
            "{text:?}: {err}"
        );
    }
}

#[test]
fn missing_file_is_an_error_naming_it() {
    let cx = TestContext::new();
    let missing = cx.path().join("nope");
    let err = cx.fails(&["debug", "parse", missing.to_str().expect("utf-8 path")]);
    assert!(
        err.starts_with("error: reading ") && err.contains("nope"),
        "{err}"
    );
}

/// Every BuildKit parser case through the CLI, byte for byte, when the shared data exists.
#[test]
fn parse_matches_every_buildkit_result_file() {
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance/buildkit-parser");
    if !dir.is_dir() {
        eprintln!("skipping: {} not found", dir.display());
        return;
    }
    let cx = TestContext::new();
    let (mut pass, mut fail) = (0, Vec::new());
    let mut cases: Vec<_> = std::fs::read_dir(dir.join("testfiles"))
        .expect("read testfiles")
        .map(|e| e.expect("entry").path())
        .collect();
    cases.sort();
    for case in cases {
        let want = std::fs::read(case.join("result")).expect("read result");
        let out = cx.run(&[
            "debug",
            "parse",
            case.join("Dockerfile").to_str().expect("utf-8 path"),
        ]);
        if out.status.success() && out.stdout == want {
            pass += 1;
        } else {
            fail.push(case.display().to_string());
        }
    }
    let mut negatives: Vec<_> = std::fs::read_dir(dir.join("testfiles-negative"))
        .expect("read testfiles-negative")
        .map(|e| e.expect("entry").path())
        .collect();
    negatives.sort();
    let mut rejected = 0;
    for case in &negatives {
        let out = cx.run(&[
            "debug",
            "parse",
            case.join("Dockerfile").to_str().expect("utf-8 path"),
        ]);
        if out.status.code() == Some(1) {
            rejected += 1;
        }
    }
    eprintln!(
        "tare debug parse: {pass} testfiles match, {} differ; {rejected}/{} negatives rejected",
        fail.len(),
        negatives.len()
    );
    assert!(fail.is_empty(), "differing cases: {fail:?}");
    // env_no_value is rejected by the parser; the other negatives too (no instructions, JSON).
    assert_eq!(rejected, negatives.len());
}

#[test]
fn stages_prints_the_evaluated_stages_with_build_args_and_target() {
    let cx = TestContext::new();
    let file = cx.write(
        "Dockerfile",
        "ARG TAG=1\nFROM alpine:$TAG AS base\nARG TAG\nENV DIR=/app\nWORKDIR $DIR/$TAG\nFROM base AS final\nRUN echo $DIR\nFROM scratch\n",
    );
    let path = file.to_str().expect("utf-8 path");
    let out = cx
        .tare()
        .args([
            "debug",
            "stages",
            path,
            "--build-arg",
            "TAG=2",
            "--build-arg",
            "NOPE=x",
            "--target",
            "final",
        ])
        .output()
        .expect("run tare");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("global ARG TAG=Some(\"2\")\nstage 0 base: FROM alpine:2 (line 2)\n"),
        "{stdout}"
    );
    assert!(stdout.contains("  5: Workdir(\"/app/2\")\n"), "{stdout}");
    assert!(
        stdout.contains("stage 1 final: FROM stage 0 (line 6)\n"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("stage 2"),
        "stages after the target are dropped: {stdout}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: one or more build-args [NOPE] were not consumed"),
        "{stderr}"
    );
}

#[test]
fn stages_rejects_unknown_flags_with_a_located_error() {
    let cx = TestContext::new();
    let file = cx.write(
        "Dockerfile",
        "FROM alpine\nCOPY --chown=1 \\\n  --form=build a b\n",
    );
    let path = file.to_str().expect("utf-8 path");
    let err = cx.fails(&["debug", "stages", path]);
    assert!(
        err.starts_with(&format!(
            "error: {path}:3:3: unknown flag: --form (did you mean --from?)\n"
        )),
        "{err}"
    );
    assert!(
        err.contains("--form=build a b"),
        "the offending line is shown: {err}"
    );
    let err = cx.fails(&["debug", "stages", path, "--target", "nope"]);
    assert!(err.contains("unknown flag"), "{err}");
    let file = cx.write("Dockerfile2", "FROM a\nWORKDIR ${D:?is required}\n");
    let err = cx.fails(&["debug", "stages", file.to_str().expect("utf-8 path")]);
    assert!(
        err.contains(":2:1: failed to process \"${D:?is required}\": D: is required"),
        "{err}"
    );
}
