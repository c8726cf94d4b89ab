//! How each instruction changes the image config, and the history text it leaves, written
//! as BuildKit's Dockerfile frontend writes them (`dispatch*` in `dockerfile2llb`), since the
//! differential tests compare with BuildKit.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use tare_dockerfile::{Command, Healthcheck, ShellOrExec};
use tare_store::config::{self as cfg, ImageConfig};

use crate::error::Error;

/// Docker's default PATH, added to a stage's environment when the base image has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The default shell for shell forms.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".to_string(), "-c".to_string()]
}

/// The state a stage carries between instructions besides the config itself.
#[derive(Debug, Clone, Default)]
pub struct StageFlags {
    /// CMD was set in this stage (an ENTRYPOINT then keeps it).
    pub cmd_set: bool,
}

/// `KEY=VALUE` entries of the config's Env as pairs.
pub fn env_pairs(config: &ImageConfig) -> Vec<(String, String)> {
    config
        .config
        .env
        .iter()
        .flatten()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.clone(), String::new()),
        })
        .collect()
}

/// Sets `key` in the config's Env, replacing an existing entry in place.
pub fn set_env(config: &mut ImageConfig, key: &str, value: &str) {
    let env = config.config.env.get_or_insert_with(Vec::new);
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(existing) => *existing = entry,
        None => env.push(entry),
    }
}

/// Adds Docker's default PATH when the environment has none (BuildKit does this for every
/// stage, `FROM scratch` included).
pub fn ensure_path(config: &mut ImageConfig) {
    if !env_pairs(config).iter().any(|(k, _)| k == "PATH") {
        set_env(config, "PATH", DEFAULT_PATH);
    }
}

/// The config's working directory, `/` when unset.
pub fn current_dir(config: &ImageConfig) -> String {
    config
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into())
}

/// The new working directory of a WORKDIR `path` in `current`, as BuildKit's
/// `NormalizeWorkdir` (and docker's `normalizeWorkdir`) gives it: an absolute path as written
/// (a trailing slash kept: `WORKDIR /go/src/app/` sets `/go/src/app/`), a relative one joined
/// to the current directory and cleaned.
pub fn working_dir(current: &str, path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        tare_layer::path::clean_in(current, path)
    }
}

/// The argument vector of a shell-or-exec form, with the stage's shell for shell forms.
pub fn command_args(form: &ShellOrExec, config: &ImageConfig) -> Vec<String> {
    match form {
        ShellOrExec::Exec(args) => args.clone(),
        ShellOrExec::Shell(line) => {
            let mut args = config.config.shell.clone().unwrap_or_else(default_shell);
            args.push(line.clone());
            args
        }
    }
}

/// Go's `%q` of a string slice: `["a" "b"]`.
fn go_quoted_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| tare_dockerfile::go_quote(s)).collect();
    format!("[{}]", quoted.join(" "))
}

/// Go's `%v` of a string slice: `[a b]`.
fn go_list(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// BuildKit's history text for HEALTHCHECK: Go's `%q` of its `*HealthConfig`, so
/// `&{["CMD-SHELL" "true"] "1m30s" "0s" "0s" "0s" '\x03'}` (the test, the interval, timeout,
/// start period and start interval as Go durations, and the retries as a Go rune literal).
fn healthcheck_history(check: &cfg::Healthcheck) -> String {
    let duration = |ns: Option<i64>| go_duration(u128::try_from(ns.unwrap_or(0)).unwrap_or(0));
    format!(
        "HEALTHCHECK &{{{} \"{}\" \"{}\" \"{}\" \"{}\" {}}}",
        go_quoted_list(check.test.as_deref().unwrap_or_default()),
        duration(check.interval),
        duration(check.timeout),
        duration(check.start_period),
        duration(check.start_interval),
        go_rune(check.retries.unwrap_or(0)),
    )
}

/// Go's `time.Duration.String()` of `ns` nanoseconds: `0s`, `1.5ms`, `1m30s`, `1h0m0s`.
fn go_duration(ns: u128) -> String {
    /// `v / div` with the fraction's trailing zeros dropped (`div` a power of ten).
    fn fraction(v: u128, div: u128) -> String {
        let (whole, rest) = (v / div, v % div);
        if rest == 0 {
            return whole.to_string();
        }
        let width = div.ilog10() as usize;
        let digits = format!("{rest:0width$}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
    const SEC: u128 = 1_000_000_000;
    match ns {
        0 => "0s".to_string(),
        n if n < 1_000 => format!("{n}ns"),
        n if n < 1_000_000 => format!("{}µs", fraction(n, 1_000)),
        n if n < SEC => format!("{}ms", fraction(n, 1_000_000)),
        n => {
            let (hours, minutes) = (n / (3600 * SEC), n / (60 * SEC) % 60);
            let seconds = fraction(n % (60 * SEC), SEC);
            match (hours, minutes) {
                (0, 0) => format!("{seconds}s"),
                (0, m) => format!("{m}m{seconds}s"),
                (h, m) => format!("{h}h{m}m{seconds}s"),
            }
        }
    }
}

/// Go's `%q` of an integer: a quoted rune literal (`'A'`, `'\n'`, `'\x00'`, `'\''`).
fn go_rune(n: i64) -> String {
    let c = u32::try_from(n)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or(char::REPLACEMENT_CHARACTER);
    let inner = match c {
        '\x07' => "\\a".to_string(),
        '\x08' => "\\b".to_string(),
        '\x0c' => "\\f".to_string(),
        '\n' => "\\n".to_string(),
        '\r' => "\\r".to_string(),
        '\t' => "\\t".to_string(),
        '\x0b' => "\\v".to_string(),
        '\\' => "\\\\".to_string(),
        '\'' => "\\'".to_string(),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => format!("\\x{:02x}", c as u32),
        c if c.is_control() => format!("\\u{:04x}", c as u32),
        c => c.to_string(),
    };
    format!("'{inner}'")
}

fn nanos(d: Option<Duration>) -> Option<i64> {
    d.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// Applies a config-only instruction. Returns the history `created_by` text, or `None` for
/// instructions that are not config-only (RUN, COPY, ADD, WORKDIR are steps with layers).
pub fn apply(
    command: &Command,
    config: &mut ImageConfig,
    flags: &mut StageFlags,
) -> Option<String> {
    let c = &mut config.config;
    let text = match command {
        Command::Env(pairs) => {
            for (k, v) in pairs {
                set_env(config, k, v);
            }
            let kvs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("ENV {}", kvs.join(" "))
        }
        Command::Arg(list) => {
            let kvs: Vec<String> = list
                .iter()
                .map(|(k, v)| match v {
                    Some(v) => format!("{k}={v}"),
                    None => k.clone(),
                })
                .collect();
            format!("ARG {}", kvs.join(" "))
        }
        Command::Label(pairs) => {
            let labels = c.labels.get_or_insert_with(BTreeMap::new);
            let mut text = "LABEL".to_string();
            for (k, v) in pairs {
                labels.insert(k.clone(), v.clone());
                text.push_str(&format!(" {k}={v}"));
            }
            text
        }
        Command::Expose(ports) => {
            // BuildKit's keys are `port/protocol`; its history lists them in the order of the
            // words (sorted as written by the parser), repeats included.
            let keys: Vec<String> = ports
                .iter()
                .map(|p| {
                    if p.contains('/') {
                        p.to_ascii_lowercase()
                    } else {
                        format!("{p}/tcp")
                    }
                })
                .collect();
            let map = c.exposed_ports.get_or_insert_with(BTreeMap::new);
            for key in &keys {
                map.insert(key.clone(), Value::Object(Default::default()));
            }
            format!("EXPOSE {}", go_list(&keys))
        }
        Command::Volume(list) => {
            let map = c.volumes.get_or_insert_with(BTreeMap::new);
            for v in list {
                map.insert(v.clone(), Value::Object(Default::default()));
            }
            format!("VOLUME {}", go_list(list))
        }
        Command::User(user) => {
            c.user = Some(user.clone());
            format!("USER {user}")
        }
        Command::Cmd(form) => {
            let args = command_args(form, config);
            config.config.cmd = Some(args.clone());
            flags.cmd_set = true;
            format!("CMD {}", go_quoted_list(&args))
        }
        Command::Entrypoint(form) => {
            let args = command_args(form, config);
            config.config.entrypoint = Some(args.clone());
            if !flags.cmd_set {
                config.config.cmd = None;
            }
            format!("ENTRYPOINT {}", go_quoted_list(&args))
        }
        Command::StopSignal(sig) => {
            c.stop_signal = Some(sig.clone());
            format!("STOPSIGNAL {sig}")
        }
        Command::Healthcheck(hc) => {
            let check = match hc {
                Healthcheck::None => cfg::Healthcheck {
                    test: Some(vec!["NONE".to_string()]),
                    ..cfg::Healthcheck::default()
                },
                Healthcheck::Cmd {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => cfg::Healthcheck {
                    test: Some(test.clone()),
                    interval: nanos(*interval),
                    timeout: nanos(*timeout),
                    start_period: nanos(*start_period),
                    start_interval: nanos(*start_interval),
                    retries: retries.map(i64::from),
                    ..cfg::Healthcheck::default()
                },
            };
            let text = healthcheck_history(&check);
            c.healthcheck = Some(check);
            text
        }
        Command::Shell(shell) => {
            c.shell = Some(shell.clone());
            format!("SHELL {}", go_list(shell))
        }
        Command::Onbuild(trigger) => {
            c.on_build
                .get_or_insert_with(Vec::new)
                .push(trigger.clone());
            format!("ONBUILD {trigger}")
        }
        Command::Maintainer(name) => {
            config.author = Some(name.clone());
            format!("MAINTAINER {name}")
        }
        Command::Run(_) | Command::Copy(_) | Command::Add(_) | Command::Workdir(_) => return None,
    };
    Some(text)
}

/// Applies `--change` instructions (`tare import`, `tare commit`) to `config` as docker's
/// `BuildFromConfig` does: tare-dockerfile parses and expands them
/// ([`tare_dockerfile::parse_changes`]: CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL,
/// ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR), and each changes the config through
/// [`apply`], the code a Dockerfile's instruction runs. No history is written, and WORKDIR
/// only sets the directory (nothing is created).
pub fn apply_changes(config: &mut ImageConfig, changes: &[String]) -> Result<(), Error> {
    let env = env_pairs(config);
    let mut flags = StageFlags::default();
    for ins in tare_dockerfile::parse_changes(changes, &env)? {
        match &ins.command {
            Command::Workdir(path) => {
                config.config.working_dir = Some(working_dir(&current_dir(config), path));
            }
            command => {
                apply(command, config, &mut flags).ok_or(Error::NotConfig {
                    keyword: command.keyword(),
                })?;
            }
        }
    }
    Ok(())
}

/// The history text of a RUN, as BuildKit writes it: the build args in effect as `|N K=V...`,
/// then the argument vector, then `# buildkit`.
pub fn run_created_by(args: &[String], build_args: &[(String, String)]) -> String {
    let mut parts = Vec::new();
    if !build_args.is_empty() {
        parts.push(format!("|{}", build_args.len()));
        parts.extend(build_args.iter().map(|(k, v)| format!("{k}={v}")));
    }
    parts.extend(args.iter().cloned());
    format!("RUN {} # buildkit", parts.join(" "))
}

/// The history text of a COPY or ADD as BuildKit writes it: `COPY [--parents]
/// [--chown=U] [--chmod=M] src... dest # buildkit` (the other flags are left out).
pub fn copy_created_by(add: bool, copy: &tare_dockerfile::Copy, sources: &[String]) -> String {
    let mut parts = vec![if add { "ADD" } else { "COPY" }.to_string()];
    if copy.parents {
        parts.push("--parents".to_string());
    }
    if let Some(chown) = copy.chown.as_deref().filter(|c| !c.is_empty()) {
        parts.push(format!("--chown={chown}"));
    }
    if let Some(chmod) = copy.chmod.as_deref().filter(|c| !c.is_empty()) {
        parts.push(format!("--chmod={chmod}"));
    }
    parts.extend(sources.iter().cloned());
    parts.push(copy.dest.clone());
    format!("{} # buildkit", parts.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_clears_an_inherited_cmd_but_not_one_set_here() {
        let mut config = ImageConfig::default();
        config.config.cmd = Some(vec!["sh".into()]);
        let mut flags = StageFlags::default();
        let ep = Command::Entrypoint(ShellOrExec::Exec(vec!["/bin/echo".into(), "hello".into()]));
        let text = apply(&ep, &mut config, &mut flags).expect("config-only");
        assert_eq!(text, r#"ENTRYPOINT ["/bin/echo" "hello"]"#);
        assert_eq!(config.config.cmd, None);
        let cmd = Command::Cmd(ShellOrExec::Shell("echo cmd".into()));
        assert_eq!(
            apply(&cmd, &mut config, &mut flags).expect("cmd"),
            r#"CMD ["/bin/sh" "-c" "echo cmd"]"#
        );
        apply(&ep, &mut config, &mut flags);
        assert!(config.config.cmd.is_some());
    }

    #[test]
    fn env_replaces_in_place_and_path_defaults() {
        let mut config = ImageConfig::default();
        ensure_path(&mut config);
        let mut flags = StageFlags::default();
        let env = Command::Env(vec![("A".into(), "1".into()), ("PATH".into(), "/x".into())]);
        assert_eq!(
            apply(&env, &mut config, &mut flags).expect("env"),
            "ENV A=1 PATH=/x"
        );
        assert_eq!(
            config.config.env,
            Some(vec!["PATH=/x".to_string(), "A=1".to_string()])
        );
    }

    #[test]
    fn run_history_lists_build_args() {
        let args = vec!["/bin/sh".to_string(), "-c".into(), "echo hi".into()];
        assert_eq!(
            run_created_by(&args, &[]),
            "RUN /bin/sh -c echo hi # buildkit"
        );
        assert_eq!(
            run_created_by(&args, &[("A".into(), "b".into())]),
            "RUN |1 A=b /bin/sh -c echo hi # buildkit"
        );
    }

    /// The texts BuildKit 0.25 wrote for these HEALTHCHECKs (seen with `docker save`).
    #[test]
    fn healthcheck_history_is_gos_q_of_the_config() {
        let check = |hc: Healthcheck| {
            let mut config = ImageConfig::default();
            apply(
                &Command::Healthcheck(hc),
                &mut config,
                &mut StageFlags::default(),
            )
            .unwrap()
        };
        let secs = |s: f64| Some(Duration::from_secs_f64(s));
        assert_eq!(
            check(Healthcheck::Cmd {
                test: vec!["CMD".into(), "true".into(), "x".into()],
                interval: secs(90.0),
                timeout: secs(1.5),
                start_period: secs(3600.0),
                start_interval: secs(2.0),
                retries: Some(10),
            }),
            r#"HEALTHCHECK &{["CMD" "true" "x"] "1m30s" "1.5s" "1h0m0s" "2s" '\n'}"#
        );
        let shell = |interval, timeout, retries| Healthcheck::Cmd {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval,
            timeout,
            start_period: None,
            start_interval: None,
            retries: Some(retries),
        };
        assert_eq!(
            check(shell(secs(330.0), None, 65)),
            r#"HEALTHCHECK &{["CMD-SHELL" "true"] "5m30s" "0s" "0s" "0s" 'A'}"#
        );
        assert_eq!(
            check(shell(None, Some(Duration::from_micros(1001)), 39)),
            r#"HEALTHCHECK &{["CMD-SHELL" "true"] "0s" "1.001ms" "0s" "0s" '\''}"#
        );
        assert_eq!(
            check(shell(None, None, 92)),
            r#"HEALTHCHECK &{["CMD-SHELL" "true"] "0s" "0s" "0s" "0s" '\\'}"#
        );
        assert_eq!(
            check(shell(None, None, 200)),
            r#"HEALTHCHECK &{["CMD-SHELL" "true"] "0s" "0s" "0s" "0s" 'È'}"#
        );
        assert_eq!(
            check(Healthcheck::None),
            r#"HEALTHCHECK &{["NONE"] "0s" "0s" "0s" "0s" '\x00'}"#
        );
        assert_eq!(go_duration(250), "250ns");
        assert_eq!(go_duration(2_500), "2.5µs");
        assert_eq!(go_duration(7_200_000_000_000), "2h0m0s");
    }
}
