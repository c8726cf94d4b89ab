//! `--change` instructions (`tare import`, `tare commit`), read as docker's `BuildFromConfig`
//! reads them: the changes joined by newlines are one Dockerfile without FROM, each
//! instruction must be one of [`CHANGE_INSTRUCTIONS`], and the words are expanded in order
//! with the config's environment, an ENV of an earlier change included.

use crate::error::Error;
use crate::model::{ArgScope, Instruction, Stage};
use crate::{instructions, parse};

/// The instructions a `--change` may be: docker's `validCommitCommands`.
pub const CHANGE_INSTRUCTIONS: [&str; 11] = [
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Parses `changes` into instructions, expanded with `env` (the config's `KEY=VALUE`
/// entries as pairs). An error is located in the source `--change`, line N being the Nth
/// change (when none spans lines).
pub fn parse_changes(
    changes: &[String],
    env: &[(String, String)],
) -> Result<Vec<Instruction>, Error> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let ast = parse(&changes.join("\n"), "--change")?;
    let mut list = Vec::with_capacity(ast.children.len());
    for node in &ast.children {
        let keyword = node.name().to_ascii_uppercase();
        if !CHANGE_INSTRUCTIONS.contains(&keyword.as_str()) {
            return Err(Error::at(
                &ast.source,
                node.span.0,
                node.span.1,
                format!(
                    "{keyword} cannot be a --change (it may be {})",
                    CHANGE_INSTRUCTIONS.join(", ")
                ),
            ));
        }
        list.push(instructions::convert(node, &ast.source)?);
    }
    let stage = Stage {
        index: 0,
        name: None,
        base: String::new(),
        base_stage: None,
        platform: None,
        line: 0,
        original: String::new(),
        instructions: list,
        scope: ArgScope::default(),
        inherited_args: Vec::new(),
        source: ast.source.clone(),
        escape: ast.directives.escape,
    };
    stage.expand(env)
}
