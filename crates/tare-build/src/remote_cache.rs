//! The build cache in a registry: `--cache-to type=registry,ref=R[,mode=min|max]` and
//! `--cache-from type=registry,ref=R` (issue 15); the same entries in an OCI layout
//! directory with `type=local,dest=DIR` / `src=DIR` ([`local`]).
//!
//! One entry per step key, each its own small OCI manifest tagged `tare-cache-<key>` in the
//! cache repository, so a builder finds a step's entry with one `GET` and writers never
//! rewrite a shared index: four machines exporting to one ref at once each add their own
//! tags, and two that export the same key write the same bytes. The manifest's config blob
//! is the [`Entry`] (media type [`ENTRY_MEDIA_TYPE`]): the key, the parent key, the encoded
//! inputs (for `--explain-cache`), the layer's descriptor and when the step first ran; its
//! one layer (none for a step without a layer) is the step's layer blob, so the registry
//! keeps the blob alive and an export of a blob the repository holds costs one `HEAD`.
//!
//! Entries are data, never code: an entry is used only when its key is the step's key, its
//! parent is the state the step runs on, and its inputs hash to that key; its layer is
//! verified by digest and diffID before it enters the store. See "The build cache in a
//! registry" in docs/ARCHITECTURE.md for what a writer of the cache ref can and cannot do.

mod entry;
mod explain;
mod export;
mod import;
mod inline;
mod listing;
mod local;
mod options;
mod transfer;

pub use entry::{child_tag, tag_of, Entry};
pub(crate) use export::{export, Prepared};
pub use import::RemoteLayer;
pub(crate) use import::{Env, Remote};
pub(crate) use inline::annotate as annotate_inline;
pub use inline::{ANNOTATION as INLINE_ANNOTATION, FORMAT as INLINE_FORMAT};
pub use listing::{list, list_dir, prune, prune_dir, Listed};
pub use options::{CacheFrom, CacheTo, Location, Mode};

/// The version of the entry format ([`Entry::format`]) this tare writes. It reads entries of
/// format 1 (not tagged by their parent, so `--explain-cache` cannot find them) and 2;
/// entries of another format are ignored.
pub const ENTRY_FORMAT: u32 = 2;
/// The media type of an entry's config blob.
pub const ENTRY_MEDIA_TYPE: &str = "application/vnd.tare.cache.entry.v1+json";
/// Each entry's tag: this prefix and the step's key (64 hex digits).
pub const TAG_PREFIX: &str = "tare-cache-";
/// The second tag of an entry of format 2: this prefix, the first 32 hex digits of the
/// SHA-256 of the parent key, `-` and the key ([`child_tag`]), so `--explain-cache` finds
/// the entries made after a given state in one tag listing.
pub const CHILD_PREFIX: &str = "tare-child-";
/// The largest entry config read (a COPY of many files has a long input list).
pub const MAX_ENTRY: u64 = 8 << 20;
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ANNOTATION_KEY: &str = "dev.tare.cache.key";
const ANNOTATION_PARENT: &str = "dev.tare.cache.parent";
const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
