//! COPY and ADD: sources (paths and heredocs), destination, flags.

use super::Cx;
use crate::flags::Kind;
use crate::model::{Copy, CopySource};
use crate::parser::parse_heredoc;
use crate::Error;

const COPY_FLAGS: &[(&str, Kind)] = &[
    ("from", Kind::String),
    ("chown", Kind::String),
    ("chmod", Kind::String),
    ("link", Kind::Bool),
    ("parents", Kind::Bool),
    ("exclude", Kind::Strings),
];

const ADD_FLAGS: &[(&str, Kind)] = &[
    ("chown", Kind::String),
    ("chmod", Kind::String),
    ("link", Kind::Bool),
    ("exclude", Kind::Strings),
    ("checksum", Kind::String),
    ("keep-git-dir", Kind::Bool),
    ("unpack", Kind::Bool),
];

pub(super) fn convert(cx: &Cx<'_>, add: bool) -> Result<Copy, Error> {
    let flags = cx.flags(if add { ADD_FLAGS } else { COPY_FLAGS })?;
    let name = if add { "ADD" } else { "COPY" };
    let node = cx.node;
    let Some((dest, sources)) = node.args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(cx.error(format!(
            "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
        )));
    };
    let mut heredocs = node.heredocs.iter();
    let mut out = Vec::with_capacity(sources.len());
    for src in sources {
        let doc = if node.json {
            None
        } else {
            parse_heredoc(src).ok().flatten()
        };
        match doc.and_then(|_| heredocs.next()) {
            Some(h) => out.push(CopySource::Heredoc(h.clone())),
            None => out.push(CopySource::Path(src.clone())),
        }
    }
    Ok(Copy {
        sources: out,
        dest: dest.clone(),
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        exclude: flags.strings("exclude"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir").unwrap_or(false),
        unpack: flags.bool("unpack"),
        json: node.json,
    })
}
