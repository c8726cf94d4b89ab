//! The image configuration, with Docker's and OCI's field names.
//!
//! oci-spec's `ImageConfiguration` drops the fields Docker adds (Healthcheck, OnBuild, Shell,
//! ArgsEscaped...), so tare keeps its own type. Every level carries an `extra` map, so a
//! config read from a docker or OCI archive is written back without losing a field.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::digest::Digest;

/// The top level of an image config blob.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    /// The CPU architecture the image's binaries are built for, in Go's names (`amd64`, `arm64`).
    #[serde(default)]
    pub architecture: String,
    /// The operating system the image runs on (`linux`).
    #[serde(default)]
    pub os: String,
    /// The CPU variant (`v7` for `arm`, `v8` for `arm64`); `None` when the architecture has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// RFC 3339 creation time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The image's author (`MAINTAINER`); `None` when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// How containers of the image run (user, environment, entrypoint, ...).
    #[serde(default)]
    pub config: RunConfig,
    /// The image's diffIDs, bottom layer first.
    pub rootfs: RootFs,
    /// One entry per build step, bottom first, including steps that made no layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    /// Fields tare does not interpret (`container`, `docker_version`, ...), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// How a container of the image runs: the `config` object of the image config.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    /// `USER`: the user (and group) the process runs as, a name or number; `None` is root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// `EXPOSE`: ports as `port/proto` keys with empty-object values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Value>>,
    /// `ENV`: the environment as `NAME=value` strings, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    /// `ENTRYPOINT`: the argv prefix of every container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `CMD`: the default arguments (after the entrypoint, or the command itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `VOLUME`: mount points as keys with empty-object values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volumes: Option<BTreeMap<String, Value>>,
    /// `WORKDIR`: the process's working directory; `None` is `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `LABEL`: key-value metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// `STOPSIGNAL`: the signal that asks the container to stop (`SIGTERM` when `None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// `HEALTHCHECK` (Docker only): how to probe the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// `SHELL` (Docker only): the shell that runs the shell form of `RUN`, `CMD` and `ENTRYPOINT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
    /// `ONBUILD` (Docker only): instructions run when another build uses this image as its base.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_build: Option<Vec<String>>,
    /// Docker's Windows-only flag that `CMD`/`ENTRYPOINT` are one pre-escaped command line; kept as
    /// read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<bool>,
    /// Fields tare does not interpret (`Hostname`, `Image`, ...), kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Docker's HEALTHCHECK settings; durations in nanoseconds as Docker stores them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// The probe: `["NONE"]` disables it, `["CMD", args...]` or `["CMD-SHELL", line]` runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<Vec<String>>,
    /// Time between probes, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<i64>,
    /// Time a probe may take before it counts as failed, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Time after start during which failures do not count, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<i64>,
    /// Time between probes during the start period, in nanoseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<i64>,
    /// Consecutive failures that make the container unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<i64>,
    /// Fields tare does not interpret, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The layer list of the image, as diffIDs (uncompressed digests), bottom first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    /// The spec's `type`; always `layers`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The sha256 of each uncompressed layer tar, bottom first.
    pub diff_ids: Vec<Digest>,
    /// Fields tare does not interpret, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs {
            kind: "layers".to_string(),
            diff_ids: Vec::new(),
            extra: BTreeMap::new(),
        }
    }
}

/// One history entry; `empty_layer` entries made no layer (ENV, CMD, ...).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    /// RFC 3339 time the step ran; `None` when the builder did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The command that made the step (the Dockerfile instruction, as docker prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// The author of the step; `None` when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Free text the builder adds (tare puts `buildkit.dockerfile.v0` here as BuildKit does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// True when the step made no layer, so it has no entry in `rootfs.diff_ids`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
    /// Fields tare does not interpret, kept verbatim.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ImageConfig {
    /// A config for an image with no layers yet, for this machine's platform.
    pub fn new_for_host() -> ImageConfig {
        ImageConfig {
            architecture: host_architecture().to_string(),
            os: "linux".to_string(),
            ..ImageConfig::default()
        }
    }
}

/// The OCI/Go name of this machine's architecture (`amd64`, `arm64`, ...).
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "arm" => "arm",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_config_round_trips_without_losing_fields() {
        let text = r#"{"architecture":"amd64","config":{"Cmd":["sh"],"Healthcheck":{"Test":["CMD","true"],"Interval":1000},"OnBuild":["RUN x"],"Shell":["/bin/sh","-c"],"ArgsEscaped":true,"Hostname":"h","Image":"sha256:aa"},"container":"abc","created":"2024-01-01T00:00:00Z","docker_version":"24","history":[{"created":"2024-01-01T00:00:00Z","created_by":"CMD [\"sh\"]","empty_layer":true}],"os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
        let cfg: ImageConfig = serde_json::from_str(text).unwrap();
        assert_eq!(cfg.config.cmd.as_deref(), Some(&["sh".to_string()][..]));
        assert!(cfg.history[0].empty_layer);
        let back: Value = serde_json::to_value(&cfg).unwrap();
        let orig: Value = serde_json::from_str(text).unwrap();
        assert_eq!(back, orig);
    }
}
