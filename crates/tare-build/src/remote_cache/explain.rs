//! `--explain-cache` across machines: why a step missed, against the closest entry of a
//! `--cache-from` source. An entry of format 2 is also tagged by its parent
//! ([`child_tag`](super::child_tag)), so one tag listing per source finds the entries made
//! after the same previous step; an image's inline cache (`type=inline`) is read whole when
//! the source connects, so its entries made after that step are at hand. The most recent of
//! them is compared, input by input, as the local cache compares its own records.

use serde_json::Value;

use super::entry::{children_prefix, Entry};
use super::import::{read_entry, Env, Remote, Session};
use super::{tag_of, CHILD_PREFIX, TAG_PREFIX};
use crate::cache::explain_difference;

/// The most entries of one parent read to find the closest.
const MAX_COMPARED: usize = 32;

impl Remote {
    /// Why the step with `inputs` on the state `parent` missed, against the most recent
    /// entry of a `--cache-from` source made after the same previous step; `None` when no
    /// source has one (the local cache explains then). A source whose entries are all of
    /// format 1 says that it cannot be compared.
    pub fn explain(&self, env: &Env<'_>, parent: &str, inputs: &Value) -> Option<String> {
        for source in &self.sources {
            let Some(Some(session)) = source.session.get() else {
                continue;
            };
            let tags = source.tags.get_or_init(|| match session.tags() {
                Ok(tags) => tags,
                Err(e) => {
                    env.warn(format!(
                        "--cache-from {}: its tags cannot be listed for --explain-cache: {e}",
                        source.location
                    ));
                    Vec::new()
                }
            });
            let closest = [
                inline_closest(session, parent),
                tagged_closest(session, tags, parent),
            ]
            .into_iter()
            .flatten()
            .reduce(|a, b| if b.0.created > a.0.created { b } else { a });
            if let Some((entry, place)) = closest {
                return Some(format!(
                    "{} (compared with the entry {}{place} of --cache-from {})",
                    explain_difference(&entry.inputs, inputs),
                    tag_of(&entry.key),
                    source.location
                ));
            }
            if is_format_1(tags) {
                return Some(format!(
                    "no entry of --cache-from {} matches; its entries are of format 1, which \
                     are not tagged by their previous step, so none can be compared (an export \
                     by this tare adds format 2 entries)",
                    source.location
                ));
            }
        }
        None
    }
}

/// Whether a source's tags are entries of format 1 only (none tagged by its parent).
fn is_format_1(tags: &[String]) -> bool {
    tags.iter().any(|t| t.starts_with(TAG_PREFIX))
        && !tags.iter().any(|t| t.starts_with(CHILD_PREFIX))
}

/// The most recent usable entry on the state `parent` that the source's tags name, with
/// where it is (nothing to add: its tag is in the source).
fn tagged_closest(session: &Session, tags: &[String], parent: &str) -> Option<(Entry, String)> {
    let prefix = children_prefix(parent);
    tags.iter()
        .filter(|t| t.starts_with(&prefix))
        .take(MAX_COMPARED)
        .filter_map(|tag| {
            // Unreadable or forged entries are not compared (a lookup warns about them).
            let Ok(Some((_, entry))) = read_entry(session, tag) else {
                return None;
            };
            entry
                .refuse(&tag[prefix.len()..], parent)
                .is_none()
                .then_some(entry)
        })
        .reduce(newer)
        .map(|e| (e, String::new()))
}

/// The most recent usable entry on the state `parent` in the inline cache of the image the
/// source names, with where it is (` in the inline cache of IMAGE`).
fn inline_closest(session: &Session, parent: &str) -> Option<(Entry, String)> {
    let Session::Registry(_, Some(inline)) = session else {
        return None;
    };
    inline
        .entries()
        .filter(|e| {
            e.parent == parent
                && e.refuse(&e.key, parent).is_none()
                && inline.refuse_layer(e).is_none()
        })
        .cloned()
        .reduce(newer)
        .map(|e| (e, format!(" in the inline cache of {}", inline.image)))
}

/// The more recent of two entries (the first when they are as old).
fn newer(a: Entry, b: Entry) -> Entry {
    if b.created > a.created {
        b
    } else {
        a
    }
}
