//! Issue 18: every command that reads a Dockerfile shows a located error's offending line
//! with a label under it (miette's snippet), not only `tare debug`.

use super::TestContext;

/// A Dockerfile with a misspelt instruction on line 2, column 3.
fn bad_dockerfile(cx: &TestContext) -> String {
    std::fs::create_dir_all(cx.path().join("ctx")).expect("ctx dir");
    let file = cx.write("ctx/Dockerfile", "FROM scratch\n  FRUM x\nRUN y\n");
    file.to_str().expect("utf-8 path").to_string()
}

/// The message first, the snippet after it, exactly once.
fn assert_snippet(err: &str, path: &str) {
    assert!(
        err.contains(&format!(
            "{path}:2:3: unknown instruction: FRUM (did you mean FROM?)"
        )),
        "{err}"
    );
    assert_eq!(err.matches(" 2 │   FRUM x").count(), 1, "{err}");
    let message = err.find(":2:3: unknown instruction").expect("message");
    let snippet = err.find(" 2 │   FRUM x").expect("snippet");
    assert!(message < snippet, "{err}");
}

#[test]
fn build_errors_show_the_offending_line() {
    let cx = TestContext::new();
    let path = bad_dockerfile(&cx);
    let ctx = cx.path().join("ctx");
    let err = cx.fails(&["build", "-f", &path, ctx.to_str().expect("utf-8 path")]);
    assert_snippet(&err, &path);
}

#[test]
fn lint_errors_show_the_offending_line() {
    let cx = TestContext::new();
    let path = bad_dockerfile(&cx);
    let err = cx.fails(&["lint", "-f", &path]);
    assert_snippet(&err, &path);
}

#[test]
fn debug_shows_the_offending_line_once() {
    let cx = TestContext::new();
    let path = bad_dockerfile(&cx);
    let err = cx.fails(&["debug", "parse", &path]);
    assert_snippet(&err, &path);
}
