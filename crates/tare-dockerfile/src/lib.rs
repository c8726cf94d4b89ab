//! tare-dockerfile: the Dockerfile front end, as exact as BuildKit's.
//!
//! It owns the text-to-model path and nothing else (no file system, no images):
//!
//! 1. [`parse`] turns text into an [`Ast`]: parser directives (`syntax`, `escape`, `check`),
//!    comments, line continuations, JSON vs shell form, flags as written, heredocs. It follows
//!    BuildKit's `parser` package rule for rule; [`Ast::dump`] prints the tree in the
//!    notation of BuildKit's parser test `result` files (`tare debug parse`). Unlike BuildKit,
//!    an unknown instruction is already a parse error here, with a "did you mean" suggestion.
//! 2. [`evaluate`] turns the [`Ast`] into a typed [`Dockerfile`]: stages with names and
//!    indices, global ARGs resolved with `--build-arg` overrides, every FROM (image and
//!    `--platform`) expanded with them, every instruction checked (argument counts, known
//!    flags, forms) into a [`Command`], the stages after `--target` dropped, and warnings
//!    (unused build args).
//! 3. [`Stage::expand`] substitutes variables in a stage's instructions. This is a separate
//!    step because Docker expands with the *base image's* environment too, which only the
//!    builder knows once it has resolved the FROM: the builder calls
//!    `stage.expand(&base_image_env)` and gets the instructions as Docker would execute them.
//!    The expansion engine itself is public: [`expand_word`] and [`expand_words`].
//!
//! Errors are one [`Error`] type; located errors render as `FILE:LINE:COL: message` and as a
//! miette diagnostic showing the offending line.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod ast;
mod changes;
mod error;
mod evaluate;
mod flags;
mod instructions;
mod json;
mod model;
mod parser;
mod pattern;
mod shell;
mod suggest;

pub use ast::{go_quote, Ast, Directives, Heredoc, Node};
pub use changes::{parse_changes, CHANGE_INSTRUCTIONS};
pub use error::{Error, LocatedError};
pub use evaluate::{evaluate, evaluate_for_platform};
pub use instructions::healthcheck::parse_go_duration;
pub use instructions::mount::{Mount, MountKind, Sharing};
pub use model::{
    Command, Copy, CopySource, Dockerfile, Healthcheck, Instruction, Location, Run, ShellOrExec,
    Stage, Warning,
};
pub use parser::parse;
pub use shell::{expand_word, expand_words};

/// Parses ONBUILD triggers taken from a base image's config (`["RUN make", ...]`) into
/// instructions, to be run at the start of a stage built on that image.
pub fn parse_triggers(triggers: &[String], escape: char) -> Result<Vec<Instruction>, Error> {
    let mut text = String::new();
    if escape != '\\' {
        text.push_str(&format!("# escape={escape}\n"));
    }
    for t in triggers {
        text.push_str(t);
        text.push('\n');
    }
    if triggers.is_empty() {
        return Ok(Vec::new());
    }
    let ast = parse(&text, "ONBUILD trigger")?;
    ast.children
        .iter()
        .map(|node| match node.name().as_str() {
            "onbuild" | "from" | "maintainer" => Err(Error::Expand {
                message: format!("{} isn't allowed as an ONBUILD trigger", node.keyword),
            }),
            _ => instructions::convert(node, &ast.source),
        })
        .collect()
}
