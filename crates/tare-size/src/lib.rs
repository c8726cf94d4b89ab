//! tare-size: the size toolkit. Where an image's bytes go, and how to get them back.
//!
//! # What it owns
//!
//! - [`index`]: a file index per diff (path, kind, size, owner, mode, content hash), built by
//!   streaming the layer tar once and cached as `ROOT/index/<diffid>.json`.
//! - [`waste`]: replays the indexes bottom up and finds every file version the final
//!   filesystem never shows (deleted, overwritten, or rewritten with the same content: the
//!   `chown -R` pattern), with the step and Dockerfile line that added and killed it, dive's
//!   efficiency, the largest files and a directory tree for the treemap.
//! - [`budget`]: `--max-size`/`--max-waste`/`--max-layers`, size parsing (`1.5GB`, `10MiB`),
//!   and the overlay limit of 125 layers.
//! - [`squash()`]: many layers become one (above the base, from layer N, or all), dead files
//!   gone, whiteouts kept only where they hide something below; committed as a new image with
//!   the config kept and the squashed history entries marked `empty_layer`.
//! - [`lint`]: size rules over the typed Dockerfile (no build needed).
//! - [`slim`]: `tare slim`'s plan (the traced files plus what they need: loader, libraries,
//!   links, parents, users, CA certificates, includes) and its one-layer image and report.
//! - [`html`]: the self-contained HTML report (inline SVG, no script, no network).
//! - [`build_summary`] and [`finish_build`]: what the builder prints after a build (waste,
//!   worst lines, budgets).
//! - [`steps`]: which step and Dockerfile line made each layer (history + `build_info`).
//!
//! It does not print (the binary renders [`waste::Analysis`] and [`lint::Finding`]s), parse
//! Dockerfiles (tare-dockerfile) or read tars beyond headers and hashes (tare-layer does
//! applying and writing).
//!
//! # Why cached indexes, not snapshot walks
//!
//! Analysis needs, for every layer, each entry's path, kind, size and a content hash (to tell
//! a `chown -R` rewrite from a real change). Walking `ROOT/snapshots/<diffid>/` with `lstat`
//! is fast, but snapshots only exist for layers that were run or built on, they lose the tar's
//! own view (whiteouts become overlay devices, opaque dirs xattrs, devices may be skipped),
//! and hashing would still read every byte. Streaming the blob gives all of it in one pass at
//! decompression speed, for any layer in the store, and the result is a few hundred bytes per
//! file that never changes (a diffID names its content). So the first analysis of a layer pays
//! one read (decompression for gzip/zstd; `tare build` stores layers uncompressed), in parallel
//! across layers, and every later analysis of any image sharing it parses JSON. Measured with
//! `cargo bench -p tare-size --bench analyze` on a 1.1 GB, 50,000-file, 5-layer image, on the
//! 2-core development machine under a load average of 10: cached 0.22-0.37 s; first analysis
//! 0.85 s uncompressed, 5.6 s gzip (the time to decompress it, 5.3 s, is the floor there;
//! loaders can hand over an index built from the stream they already read, [`index::save_index`]).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod budget;
mod error;
pub mod html;
pub mod imagediff;
pub mod index;
pub mod lint;
pub mod slim;
mod squash;
pub mod steps;
mod summary;
pub mod waste;

pub use budget::{check, parse_size, BudgetReport, Budgets, Violation, OVERLAY_MAX_LAYERS};
pub use error::{Error, Result};
pub use squash::{squash, SquashFrom, Squashed};
pub use summary::{build_summary, finish_build, BuildSquash, BuildSummary, Finished};
pub use waste::{analyze, Analysis, Finding, Waste, WasteKind};
