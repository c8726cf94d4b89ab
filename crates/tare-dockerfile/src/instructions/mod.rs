//! Raw nodes to typed [`Instruction`]s: argument counts, flags, forms. Variables are not
//! expanded here (see [`crate::Stage::expand`]), so nothing depends on the base image yet.

mod copy;
pub(crate) mod healthcheck;
pub(crate) mod mount;
mod run;

pub(crate) use run::parse_mounts;

use crate::ast::Node;
use crate::error::Source;
use crate::flags::{FlagError, Flags, Kind};
use crate::model::{Command, Instruction, Location, ShellOrExec};
use crate::Error;

/// Converts one node (not FROM) into a typed instruction.
pub(crate) fn convert(node: &Node, source: &Source) -> Result<Instruction, Error> {
    let cx = Cx { node, source };
    let name = node.name();
    let command = match name.as_str() {
        "run" => Command::Run(run::convert(&cx)?),
        "copy" => Command::Copy(copy::convert(&cx, false)?),
        "add" => Command::Add(copy::convert(&cx, true)?),
        "healthcheck" => Command::Healthcheck(healthcheck::convert(&cx)?),
        "env" | "label" => {
            cx.flags(&[])?;
            if node.args.is_empty() {
                return Err(cx.error(format!("{} requires at least one argument", upper(&name))));
            }
            let pairs: Vec<(String, String)> = node
                .args
                .chunks(3)
                .map(|t| (t[0].clone(), t.get(1).cloned().unwrap_or_default()))
                .collect();
            if pairs.iter().any(|(k, _)| k.is_empty()) {
                return Err(cx.error(format!("{} names can not be blank", upper(&name))));
            }
            if name == "env" {
                Command::Env(pairs)
            } else {
                Command::Label(pairs)
            }
        }
        "arg" => {
            cx.flags(&[])?;
            if node.args.is_empty() {
                return Err(cx.error("ARG requires at least one argument"));
            }
            let args = node
                .args
                .iter()
                .map(|a| match a.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (a.clone(), None),
                })
                .collect::<Vec<_>>();
            if args.iter().any(|(k, _)| k.is_empty()) {
                return Err(cx.error("ARG names can not be blank"));
            }
            Command::Arg(args)
        }
        "expose" => {
            // BuildKit's parser sorts the words as written (byte order, before expansion):
            // the history lists the ports in that order.
            let mut ports = cx.at_least_one()?;
            ports.sort();
            Command::Expose(ports)
        }
        "volume" => {
            let volumes = cx.at_least_one()?;
            if volumes.iter().any(|v| v.trim().is_empty()) {
                return Err(cx.error("VOLUME specified can not be an empty string"));
            }
            Command::Volume(volumes)
        }
        "user" => Command::User(cx.exactly_one()?),
        "workdir" => Command::Workdir(cx.exactly_one()?),
        "stopsignal" => Command::StopSignal(cx.exactly_one()?),
        "maintainer" => Command::Maintainer(cx.exactly_one()?),
        "cmd" => {
            cx.flags(&[])?;
            Command::Cmd(cx.shell_or_exec())
        }
        "entrypoint" => {
            cx.flags(&[])?;
            Command::Entrypoint(cx.shell_or_exec())
        }
        "shell" => {
            cx.flags(&[])?;
            if !node.json {
                return Err(cx.error("SHELL requires the arguments to be in JSON form"));
            }
            if node.args.is_empty() {
                return Err(cx.error("SHELL requires at least one argument"));
            }
            Command::Shell(node.args.clone())
        }
        "onbuild" => {
            cx.flags(&[])?;
            let Some(inner) = &node.inner else {
                return Err(cx.error("ONBUILD requires at least one argument"));
            };
            match inner.name().as_str() {
                "onbuild" => {
                    return Err(cx.error("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"))
                }
                "from" | "maintainer" => {
                    return Err(cx.error(format!(
                        "{} isn't allowed as an ONBUILD trigger",
                        inner.keyword
                    )))
                }
                _ => {}
            }
            convert(inner, source)?;
            let trigger = node.original.trim_start();
            let mut trigger = trigger[node.keyword.len().min(trigger.len())..]
                .trim_start()
                .to_string();
            // Keep heredoc bodies so that the trigger parses again to the same instruction.
            for doc in &node.heredocs {
                trigger.push('\n');
                trigger.push_str(&doc.content);
                trigger.push_str(&doc.name);
            }
            Command::Onbuild(trigger)
        }
        "from" => return Err(cx.error("FROM is handled by evaluation")),
        other => return Err(cx.error(format!("unknown instruction: {}", upper(other)))),
    };
    Ok(Instruction {
        location: Location {
            start_line: node.start_line,
            end_line: node.end_line,
        },
        original: node.original.trim().to_string(),
        command,
        span: node.span,
    })
}

fn upper(s: &str) -> String {
    s.to_ascii_uppercase()
}

/// A node being converted, with helpers for the checks most instructions share.
pub(crate) struct Cx<'a> {
    pub node: &'a Node,
    pub source: &'a Source,
}

impl Cx<'_> {
    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::at(self.source, self.node.span.0, self.node.span.1, message)
    }

    /// Points at the flag as written when it can be found on the instruction's lines.
    fn flag_error(&self, e: FlagError) -> Error {
        let (start, end) = self.node.span;
        let text = self.source.text.get(start..end).unwrap_or("");
        let name = e.flag.split('=').next().unwrap_or(&e.flag);
        match text.find(name) {
            Some(i) => Error::at(
                self.source,
                start + i,
                start + i + e.flag.len().min(end - start - i),
                e.message,
            ),
            None => Error::at(self.source, start, end, e.message),
        }
    }

    pub fn flags(&self, allowed: &[(&'static str, Kind)]) -> Result<Flags, Error> {
        Flags::parse(&self.node.flags, allowed).map_err(|e| self.flag_error(e))
    }

    fn at_least_one(&self) -> Result<Vec<String>, Error> {
        self.flags(&[])?;
        if self.node.args.is_empty() {
            return Err(self.error(format!(
                "{} requires at least one argument",
                upper(&self.node.name())
            )));
        }
        Ok(self.node.args.clone())
    }

    fn exactly_one(&self) -> Result<String, Error> {
        self.flags(&[])?;
        match self.node.args.as_slice() {
            [one] => Ok(one.clone()),
            _ => Err(self.error(format!(
                "{} requires exactly one argument",
                upper(&self.node.name())
            ))),
        }
    }

    pub fn shell_or_exec(&self) -> ShellOrExec {
        if self.node.json || self.node.args.is_empty() {
            ShellOrExec::Exec(self.node.args.clone())
        } else {
            ShellOrExec::Shell(self.node.args.join(" "))
        }
    }
}
