//! docker's CLI habits (issue 20): listing flags, Go templates, management commands, pipes.
//! Where docker can see the same images (a tare archive loaded into it), the output is
//! compared with docker's for the same template.

use std::io::Read as _;
use std::process::Stdio;

use super::{json, run_ok};
use crate::util::{docker, docker_disabled, TestContext};

/// A store with busybox and two labelled images built on it, the second built later.
fn store_with_images() -> TestContext {
    let t = TestContext::new();
    t.import_busybox("busybox");
    for (tag, label) in [("habits/one:1", "one"), ("habits/two:2", "two")] {
        let dir = t.path().join(label);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("Dockerfile"),
            format!("FROM busybox\nLABEL which={label} team=size\nCOPY Dockerfile /{label}\n"),
        )
        .unwrap();
        t.ok(&["build", "-q", "-t", tag, dir.to_str().unwrap()]);
        // `since`/`before` compare creation times, which have one-second resolution.
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    t
}

fn lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text.lines().map(str::to_string).collect();
    v.sort();
    v
}

#[test]
fn images_quiet_filters_and_no_trunc() {
    let t = store_with_images();
    let ids = t.ok(&["images", "-q"]);
    assert_eq!(ids.lines().count(), 3, "{ids}");
    assert!(ids.lines().all(|l| l.len() == 12), "{ids}");
    let full = t.ok(&["images", "-q", "--no-trunc"]);
    assert!(
        full.lines()
            .all(|l| l.starts_with("sha256:") && l.len() == 71),
        "{full}"
    );

    let names = |filters: &[&str]| {
        let mut args = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        for f in filters {
            args.extend(["--filter", f]);
        }
        lines(&t.ok(&args))
    };
    assert_eq!(names(&["label=which=two"]), ["habits/two:2"]);
    assert_eq!(names(&["label=team"]), ["habits/one:1", "habits/two:2"]);
    assert_eq!(
        names(&["reference=habits/*"]),
        ["habits/one:1", "habits/two:2"]
    );
    assert_eq!(
        names(&["reference=busybox", "reference=*/one"]),
        ["busybox:latest", "habits/one:1"]
    );
    assert_eq!(names(&["since=habits/one:1"]), ["habits/two:2"]);
    assert_eq!(
        names(&["before=habits/two:2", "label=team"]),
        ["habits/one:1"]
    );
    assert_eq!(names(&["dangling=true"]), Vec::<String>::new());
    // The positional REPOSITORY[:TAG] filter, as `docker images busybox`.
    assert_eq!(
        lines(&t.ok(&["images", "busybox", "--format", "{{.Repository}}"])),
        ["busybox"]
    );

    // An image whose tag moved on is dangling; `image prune -f` removes it.
    t.ok(&["tag", "habits/one:1", "habits/two:2"]);
    assert_eq!(names(&["dangling=true"]), ["<none>:<none>"]);
    let pruned = t.ok(&["image", "prune", "-f"]);
    assert!(pruned.contains("deleted: sha256:"), "{pruned}");
    assert_eq!(names(&["dangling=true"]), Vec::<String>::new());

    let err = t.fails(&["images", "--filter", "colour=blue"]);
    assert!(err.contains("colour"), "{err}");
    let err = t.fails(&["images", "--filter", "since=nosuch:1"]);
    assert!(err.contains("nosuch:1"), "{err}");
    let err = t.fails(&["images", "--format", "{{.Nope}}"]);
    assert!(err.contains("Nope"), "{err}");
    let err = t.fails(&["images", "--format", "{{if .ID}}"]);
    assert!(err.contains("end"), "{err}");
}

#[test]
fn templates_and_tables_match_docker_for_the_same_image() {
    if docker_disabled() {
        return;
    }
    let t = store_with_images();
    let tag = format!("habits-docker:{}", std::process::id());
    t.ok(&["tag", "habits/two:2", &tag]);
    // docker sees only the tag it loads.
    t.ok(&["rmi", "habits/two:2"]);
    let archive = t.path().join("two.tar");
    t.ok(&["save", "-o", archive.to_str().unwrap(), &tag]);
    run_ok(docker().args(["load", "-i"]).arg(&archive));
    let both = |args: &[&str]| {
        let ours = t.ok(args);
        let theirs = run_ok(docker().args(args));
        (ours, theirs)
    };
    let checks: Vec<Vec<&str>> = vec![
        vec![
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}",
            &tag,
        ],
        vec![
            "images",
            "--format",
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}",
            &tag,
        ],
        vec!["images", "-q", &tag],
        vec!["images", "-q", "--no-trunc", &tag],
        vec![
            "history",
            "-H=false",
            "--format",
            "{{.CreatedBy}}|{{.Size}}|{{.Comment}}",
            &tag,
        ],
        vec!["history", "-q", &tag],
        vec![
            "image",
            "inspect",
            "--format",
            "{{.Id}} {{.RepoTags}} {{.Config.Env}} {{.Config.Cmd}} {{.Os}}/{{.Architecture}}",
            &tag,
        ],
        vec![
            "image",
            "inspect",
            "--format",
            "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}} {{index .RepoTags 0}} \
             {{len .RootFS.Layers}} {{if eq .Os \"linux\"}}yes{{else}}no{{end}} \
             {{upper .Config.Labels.which}} {{join .Config.Env \",\"}} {{json .Config.Labels}}",
            &tag,
        ],
        vec!["image", "inspect", "-f", "{{.Size}}", &tag],
    ];
    for args in checks {
        let (ours, theirs) = both(&args);
        assert_eq!(ours, theirs, "tare and docker differ for {args:?}");
    }
    // `{{json .}}` has docker's field names.
    let (ours, theirs) = both(&["images", "--format", "{{json .}}", &tag]);
    let keys = |text: &str| {
        let mut k: Vec<String> = json(text.trim())
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys(&ours), keys(&theirs));
    run_ok(docker().args(["rmi", &tag]));
}

#[test]
fn management_commands_are_aliases_and_prunes_need_force_without_a_terminal() {
    let t = TestContext::new();
    t.import_busybox("busybox");
    assert_eq!(t.ok(&["image", "ls", "-q"]), t.ok(&["images", "-q"]));
    assert_eq!(
        t.ok(&["image", "history", "-q", "busybox"]),
        t.ok(&["history", "-q", "busybox"])
    );
    t.ok(&["image", "tag", "busybox", "other:1"]);
    assert!(t
        .ok(&["image", "rm", "other:1"])
        .contains("Untagged: other:1"));
    t.ok(&["container", "run", "--name", "gone", "busybox", "true"]);
    let listed = t.ok(&["container", "ls", "-a", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(listed, "gone exited\n");
    assert_eq!(t.ok(&["container", "ps", "-aq"]), t.ok(&["ps", "-aq"]));

    for args in [
        &["container", "prune"][..],
        &["image", "prune"],
        &["builder", "prune"],
        &["system", "prune"],
    ] {
        let err = t.fails(args);
        assert!(err.contains("-f"), "{args:?}: {err}");
    }
    assert_eq!(
        t.ok(&["ps", "-aq"]).lines().count(),
        1,
        "nothing was pruned"
    );

    let out = t.ok(&["container", "prune", "-f"]);
    assert!(out.starts_with("Deleted Containers:\n"), "{out}");
    assert_eq!(t.ok(&["ps", "-aq"]), "");
    let out = t.ok(&["system", "prune", "-f", "-a"]);
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert_eq!(
        t.ok(&["images", "-q"]),
        "",
        "-a removes images no container uses"
    );
    t.ok(&["check"]);
}

#[test]
fn ps_flags_filter_limit_and_template() {
    let t = TestContext::new();
    t.import_busybox("busybox");
    for (name, code) in [("first", "0"), ("second", "3"), ("third", "0")] {
        let out = t
            .tare()
            .args([
                "run",
                "--name",
                name,
                "busybox",
                "sh",
                "-c",
                &format!("exit {code}"),
            ])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(code.parse().unwrap()));
        std::thread::sleep(std::time::Duration::from_millis(1100));
    }
    let names = |args: &[&str]| {
        let mut a = vec!["ps", "--format", "{{.Names}}"];
        a.extend(args);
        t.ok(&a).lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert_eq!(names(&["-a"]), ["third", "second", "first"]);
    assert_eq!(names(&[]), Vec::<String>::new(), "none is running");
    assert_eq!(names(&["-n", "2"]), ["third", "second"]);
    assert_eq!(names(&["-l"]), ["third"]);
    assert_eq!(names(&["-a", "--filter", "exited=3"]), ["second"]);
    assert_eq!(
        names(&["-a", "--filter", "status=exited", "--filter", "name=ir"]),
        ["third", "first"]
    );
    assert_eq!(names(&["-a", "--filter", "ancestor=busybox"]).len(), 3);
    let table = t.ok(&[
        "ps",
        "-a",
        "-s",
        "--format",
        "table {{.Names}}\t{{.Status}}\t{{.Size}}",
    ]);
    let rows: Vec<&str> = table.lines().collect();
    assert!(
        rows[0].starts_with("NAMES") && rows[0].contains("STATUS"),
        "{table}"
    );
    assert!(
        rows[2].contains("Exited (3)") && rows[2].contains("(virtual"),
        "{table}"
    );
    let err = t.fails(&["ps", "--filter", "status=paused"]);
    assert!(err.contains("paused"), "{err}");
}

#[test]
fn a_closed_pipe_ends_printing_commands_quietly_with_exit_0() {
    let t = TestContext::new();
    t.import_busybox("busybox");
    for args in [
        &["analyze", "busybox", "--format", "json"][..],
        &["inspect", "busybox"],
        &["history", "busybox"],
        &["images", "--format", "{{json .}}"],
    ] {
        let mut child = t
            .tare()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Close the read end at once, as `| head -c0` would: every write gets EPIPE.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{args:?}: {status:?} {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("error"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn completions_complete_subcommands_and_man_pages_are_written() {
    let t = TestContext::new();
    let script = t.path().join("tare.bash");
    std::fs::write(&script, t.ok(&["completion", "bash"])).unwrap();
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(tare ima); COMP_CWORD=1; _tare tare ima tare; \
             echo \"${{COMPREPLY[@]}}\"",
            script.display()
        ))
        .output()
        .unwrap();
    let words = String::from_utf8_lossy(&out.stdout);
    let words: Vec<&str> = words.split_whitespace().collect();
    assert!(
        words.contains(&"images") && words.contains(&"image"),
        "{words:?}"
    );
    let err = t.fails(&["completion", "tcsh"]);
    assert!(err.contains("tcsh"), "{err}");

    let dir = t.path().join("man");
    let listed = t.ok(&["man", dir.to_str().unwrap()]);
    assert!(
        listed.contains("tare-image-ls.1") && listed.contains("tare-build.1"),
        "{listed}"
    );
    let page = std::fs::read_to_string(dir.join("tare-images.1")).unwrap();
    assert!(
        page.starts_with(".ie") || page.contains(".TH tare-images"),
        "{page}"
    );
    assert!(page.contains("dangling"), "the page has the flags' help");
}

/// The issue's measure: a script written for docker's image and container commands runs
/// unchanged with `docker` pointing at tare.
#[test]
fn a_docker_script_runs_unchanged_against_tare() {
    let t = TestContext::new();
    t.import_busybox("busybox");
    let script = r#"
set -euo pipefail
docker() { "$TARE" "$@"; }
docker tag busybox app:old
docker tag busybox app:new
docker rmi app:old >/dev/null
[ "$(docker images -q --filter reference='app:*' | wc -l)" = 1 ]
docker images --format '{{.Repository}}:{{.Tag}}' | sort | tr '\n' ' '; echo
id=$(docker run -d --name web busybox sh -c 'echo serving; sleep 30')
[ "$(docker ps -q --no-trunc)" = "$id" ]
for i in $(seq 1 100); do docker logs web | grep -q serving && break; sleep 0.1; done
docker logs --tail 1 web
docker exec web sh -c 'echo exec in $(hostname)' | grep -q "exec in ${id:0:12}"
docker exec -e WHO=script -w /tmp web sh -c 'echo $WHO $(pwd)'
docker stop -t 1 web >/dev/null
docker ps -a --filter name=web --format '{{.Names}}: {{.State}}'
docker container rm web >/dev/null
docker rmi $(docker images -q --filter dangling=true) 2>/dev/null || true
docker image inspect --format '{{.Os}}/{{.Architecture}} {{len .RootFS.Layers}} layer' app:new
docker history -q app:new | head -1 | grep -q .
docker image prune -f >/dev/null
docker container prune -f >/dev/null
docker system prune -f >/dev/null
[ "$(docker ps -aq)" = "" ]
echo done
"#;
    let out = std::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("TARE", env!("CARGO_BIN_EXE_tare"))
        .env("TARE_ROOT", t.root.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout,
        "app:new busybox:latest \nserving\nscript /tmp\nweb: exited\nlinux/amd64 1 layer\ndone\n"
    );
}
