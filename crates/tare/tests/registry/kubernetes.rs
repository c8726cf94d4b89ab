//! examples/kubernetes/tare-build-job.yaml: the Job is checked against the Kubernetes API's own
//! types (k8s-openapi, generated from the API's OpenAPI schema), with every field those types do
//! not know reported (serde_ignored), since a misspelt field is silently dropped by the API
//! server. Then the Job's command line, taken from the manifest, runs as an ordinary user
//! (tests/util/rootless.rs) against a local registry with basic auth: the pod's shape without
//! a cluster.

#[path = "../util/rootless.rs"]
mod user;

use std::path::{Path, PathBuf};

use base64::Engine as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Container;

use crate::harness::{RegistryConfig, RegistryServer};
use crate::util::TestContext;
use user::RootlessUser;

fn manifest() -> String {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/kubernetes/tare-build-job.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Parses a manifest as the API's Job. Every field the API does not know, a value of the wrong
/// type, a missing required field or another `kind` is an error naming it.
fn validate_job(text: &str) -> Result<Job, String> {
    let mut unknown = Vec::new();
    let job: Job = serde_ignored::deserialize(serde_norway::Deserializer::from_str(text), |p| {
        // serde_ignored writes `?` for the Option around a field; the API's paths have none.
        unknown.push(p.to_string().replace(".?", ""))
    })
    .map_err(|e| e.to_string())?;
    if unknown.is_empty() {
        Ok(job)
    } else {
        Err(format!("not in the Kubernetes API: {}", unknown.join(", ")))
    }
}

fn tare_container(job: &Job) -> Container {
    let pod = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("pod spec");
    pod.containers
        .iter()
        .find(|c| c.name == "tare")
        .expect("a container named tare")
        .clone()
}

#[test]
fn kubernetes_job_manifest_matches_the_api_schema() {
    let job = validate_job(&manifest()).unwrap_or_else(|e| panic!("tare-build-job.yaml: {e}"));
    let pod = job.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    // The settings the README explains: a user namespace for the pod, a non-root user.
    assert_eq!(pod.host_users, Some(false));
    let security = pod.security_context.as_ref().expect("pod securityContext");
    assert_eq!(security.run_as_non_root, Some(true));
    assert_ne!(security.run_as_user, Some(0));
    let tare = tare_container(&job);
    let args = tare.args.expect("args");
    assert_eq!(args[0], "build");
    assert!(args.iter().any(|a| a == "--push"), "{args:?}");
}

#[test]
fn misspelt_or_mistyped_fields_in_the_job_manifest_are_refused() {
    let text = manifest();
    for (from, to, named) in [
        (
            "hostUsers: false",
            "hostUser: false",
            "spec.template.spec.hostUser",
        ),
        ("runAsNonRoot: true", "runAsNonroot: true", "runAsNonroot"),
        ("procMount: Unmasked", "procMnt: Unmasked", "procMnt"),
        ("readOnly: true", "readonly: true", "readonly"),
        (
            "ttlSecondsAfterFinished: 3600",
            "ttlSecondsAfterFinished: an hour",
            "invalid type",
        ),
        ("kind: Job", "kind: CronJob", "CronJob"),
    ] {
        assert!(text.contains(from), "the manifest no longer has `{from}`");
        let err =
            validate_job(&text.replacen(from, to, 1)).expect_err(&format!("`{to}` was accepted"));
        assert!(err.contains(named), "`{to}`: {err}");
    }
}

/// The Job's `tare build --push` command line, with its registry, workspace and volumes
/// replaced by local ones, run as an ordinary user with a subordinate range.
#[test]
fn the_jobs_command_line_builds_and_pushes_as_an_ordinary_user() {
    let job = validate_job(&manifest()).expect("valid manifest");
    let tare = tare_container(&job);
    let registry = RegistryServer::start(RegistryConfig {
        basic: Some(("builder".into(), "s3cret".into())),
        tls: None,
    });
    let host = registry.host();
    let u = RootlessUser::ranged();

    // The base image the Dockerfile starts from is in the registry, as in a real cluster.
    let root = TestContext::new();
    root.import_busybox("busybox");
    let auth = base64::engine::general_purpose::STANDARD.encode("builder:s3cret");
    let config = format!("{{\"auths\":{{\"{host}\":{{\"auth\":\"{auth}\"}}}}}}");
    let root_docker = root.write("docker/config.json", &config);
    let base = format!("{host}/tools/base:latest");
    root.ok(&["tag", "busybox", &base]);
    let push = root
        .tare()
        .env("DOCKER_CONFIG", root_docker.parent().unwrap())
        .args(["push", &base])
        .output()
        .expect("push");
    assert!(
        push.status.success(),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );

    // The volumes: the workspace (the git checkout), the cache, HOME and the auth secret.
    u.write(
        "workspace/Dockerfile",
        format!("FROM {base}\nCOPY hello /hello\nRUN chown 1000:1000 /hello && echo built > /built\nUSER 1000\nCMD [\"cat\", \"/hello\", \"/built\"]\n").as_bytes(),
    );
    u.write("workspace/hello", b"hello from the job\n");
    u.write("cache/.keep", b"");
    u.write("docker-auth/config.json", config.as_bytes());
    let volume = |name: &str| -> PathBuf { u.path().join(name) };
    let mounts: Vec<(String, PathBuf)> = tare
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let local = match m.name.as_str() {
                "workspace" => volume("workspace"),
                "cache" => volume("cache"),
                "home" => volume("home"),
                "registry-auth" => volume("docker-auth"),
                other => panic!("a volume the test does not provide: {other}"),
            };
            (m.mount_path.clone(), local)
        })
        .collect();
    // A path in the pod, on the test's machine: the longest mount path it is under.
    let local_path = |pod_path: &str| -> String {
        let (mount, local) = mounts
            .iter()
            .filter(|(m, _)| pod_path == m || pod_path.starts_with(&format!("{m}/")))
            .max_by_key(|(m, _)| m.len())
            .unwrap_or_else(|| panic!("{pod_path} is on no volume"));
        let rest = pod_path[mount.len()..].trim_start_matches('/');
        local.join(rest).to_string_lossy().into_owned()
    };
    let args: Vec<String> = tare
        .args
        .iter()
        .flatten()
        .map(|a| {
            if a.starts_with('/') {
                local_path(a)
            } else {
                a.replace("registry.example.com", &host)
            }
        })
        .collect();
    let mut cmd = u.tare();
    for env in tare.env.iter().flatten() {
        let value = env.value.as_deref().expect("env value");
        cmd.env(&env.name, local_path(value));
    }
    let out = cmd.args(&args).output().expect("run tare");
    assert!(
        out.status.success(),
        "rootless {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The pushed image, pulled by root, runs as the Dockerfile says.
    let target = args
        .iter()
        .find(|a| a.starts_with(&host))
        .expect("the -t reference");
    let pull = root
        .tare()
        .env("DOCKER_CONFIG", root_docker.parent().unwrap())
        .args(["pull", target])
        .output()
        .expect("pull");
    assert!(
        pull.status.success(),
        "{}",
        String::from_utf8_lossy(&pull.stderr)
    );
    let shown = root.ok(&["run", "--rm", target]);
    assert_eq!(shown, "hello from the job\nbuilt\n");
    let owner = root.ok(&["run", "--rm", target, "stat", "-c", "%u:%g", "/hello"]);
    assert_eq!(owner.trim(), "1000:1000");
    // The cache volume holds the store, and the build left nothing owned by others.
    assert!(Path::new(&local_path("/cache/tare")).join("blobs").is_dir());
    assert_eq!(u.foreign_files(&volume("cache")), Vec::<String>::new());
}
