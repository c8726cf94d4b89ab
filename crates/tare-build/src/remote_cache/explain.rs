//! `--explain-cache` across machines: why a step missed, against the closest entry of a
//! `--cache-from` source. An entry of format 2 is also tagged by its parent
//! ([`child_tag`](super::child_tag)), so one tag listing per source finds the entries made
//! after the same previous step; the most recent of them is compared, input by input, as
//! the local cache compares its own records.

use serde_json::Value;

use super::entry::children_prefix;
use super::import::{read_entry, Env, Remote};
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
        let prefix = children_prefix(parent);
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
            let mut closest = None;
            for tag in tags
                .iter()
                .filter(|t| t.starts_with(&prefix))
                .take(MAX_COMPARED)
            {
                let key = &tag[prefix.len()..];
                // Unreadable or forged entries are not compared (a lookup warns about them).
                let Ok(Some((_, entry))) = read_entry(session, tag) else {
                    continue;
                };
                if entry.refuse(key, parent).is_some() {
                    continue;
                }
                if closest
                    .as_ref()
                    .is_none_or(|c: &super::Entry| entry.created > c.created)
                {
                    closest = Some(entry);
                }
            }
            if let Some(entry) = closest {
                return Some(format!(
                    "{} (compared with the entry {} of --cache-from {})",
                    explain_difference(&entry.inputs, inputs),
                    tag_of(&entry.key),
                    source.location
                ));
            }
            let old = tags.iter().any(|t| t.starts_with(TAG_PREFIX))
                && !tags.iter().any(|t| t.starts_with(CHILD_PREFIX));
            if old {
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
