//! ADD of a URL against hostile HTTP servers: redirect loops, redirects to other schemes, and
//! error answers end the build with the URL named, and write nothing outside the store.

use crate::fs_writes::Canary;
use crate::util::http::Server;
use crate::util::TestContext;

fn setup() -> TestContext {
    let t = TestContext::new();
    t.import_busybox("busybox");
    t
}

/// Builds `FROM busybox` + `ADD url /got`; the error text when it fails.
fn add(t: &TestContext, url: &str) -> Result<(), String> {
    t.write("ctx/Dockerfile", &format!("FROM busybox\nADD {url} /got\n"));
    let ctx = t.path().join("ctx");
    let out = t.run(&["build", "-q", "-t", "attack:add", ctx.to_str().unwrap()]);
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[test]
fn redirect_loops_and_redirects_to_other_schemes_fail_naming_the_url() {
    let t = setup();
    let canary = Canary::new(&t);
    let secret = canary.path().to_string();
    let server = Server::forever(move |line| {
        let location = if line.contains("/to-file") {
            format!("file://{secret}")
        } else {
            // Every other path redirects to itself: a loop.
            line.split_whitespace().nth(1).unwrap_or("/").to_string()
        };
        format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n")
            .into_bytes()
    });
    for path in ["loop", "to-file"] {
        let url = server.url(path);
        let err = add(&t, &url).expect_err(path);
        assert!(err.contains(&url), "{path}: names the URL:\n{err}");
        assert!(
            err.contains("Dockerfile:2:"),
            "{path}: names the line:\n{err}"
        );
    }
    canary.assert_intact();
    t.ok(&["check"]);
}

#[test]
fn error_answers_fail_with_their_status() {
    let t = setup();
    let server = Server::forever(|_| {
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here\n"
            .to_vec()
    });
    let url = server.url("missing.txt");
    let err = add(&t, &url).expect_err("a 404");
    assert!(err.contains(&url) && err.contains("404"), "{err}");
    assert!(
        !t.run(&["image", "inspect", "attack:add"]).status.success(),
        "no image was made"
    );
    t.ok(&["check"]);
}
