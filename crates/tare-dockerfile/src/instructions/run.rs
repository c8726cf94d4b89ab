//! RUN: command, `--mount`, `--network`, `--security`, heredocs.

use super::mount::Mount;
use super::Cx;
use crate::flags::Kind;
use crate::model::{Run, ShellOrExec};
use crate::Error;

pub(super) fn convert(cx: &Cx<'_>) -> Result<Run, Error> {
    let flags = cx.flags(&[
        ("mount", Kind::Strings),
        ("network", Kind::String),
        ("security", Kind::String),
    ])?;
    let network = flags.string("network");
    if let Some(n) = &network {
        if !matches!(n.as_str(), "default" | "none" | "host") {
            return Err(cx.error(format!(
                "unsupported network mode {n:?} (use default, none or host)"
            )));
        }
    }
    let security = flags.string("security");
    if let Some(s) = &security {
        if !matches!(s.as_str(), "sandbox" | "insecure") {
            return Err(cx.error(format!(
                "unsupported security mode {s:?} (use sandbox or insecure)"
            )));
        }
    }
    let mount_specs = flags.strings("mount");
    let mounts = parse_mounts(&mount_specs, &mut |v| Ok(v.to_string())).map_err(|m| cx.error(m))?;
    let cmd = cx.shell_or_exec();
    if matches!(&cmd, ShellOrExec::Shell(s) if s.trim().is_empty())
        || cx.node.args.is_empty() && !cx.node.json
    {
        return Err(cx.error("RUN requires at least one argument"));
    }
    Ok(Run {
        cmd,
        mounts,
        network,
        security,
        heredocs: cx.node.heredocs.clone(),
        build_args: Vec::new(),
        history_args: Vec::new(),
        mount_specs,
    })
}

pub(crate) fn parse_mounts(
    specs: &[String],
    expand: &mut dyn FnMut(&str) -> Result<String, String>,
) -> Result<Vec<Mount>, String> {
    specs
        .iter()
        .map(|s| Mount::parse(s, expand).map_err(|e| format!("invalid --mount {s:?}: {e}")))
        .collect()
}
