//! tare-build: from a Dockerfile to an image in the store.
//!
//! The pipeline, left to right:
//!
//! - [`engine`]: parse and evaluate the Dockerfile (`tare-dockerfile`), keep the stages the
//!   target needs, build them (independent ones at the same time), commit the image.
//! - `stage`: one stage's steps in order, each handed to `steps::dispatch`, which calls
//!   one function per instruction kind (`steps/*.rs`) with a step context (`context`).
//!   Each layer step is answered by the `cache` or run.
//! - Steps: `steps::run` (RUN in `tare-sandbox` over an overlay of the stage's snapshots,
//!   through `run`), `steps::copy` (COPY/ADD through `copy`, from the context
//!   ([`tree::ContextTree`], `dockerignore`), a stage or an image, [`fetch`] for ADD of
//!   URLs), `steps::workdir`, and `steps::config` for the instructions that only change the
//!   image config ([`config`]).
//! - [`secrets`]: the `--secret` values and `--ssh` agents that RUN's secret and ssh mounts
//!   bring into a step, and nowhere else.
//! - `layer`: a step's directory becomes a diff (`tare_layer::diff`), a compressed layer in
//!   the store (`tare_layer::LayerSink`) and the snapshot the next steps stack on.
//! - [`remote_cache`]: the cache in a registry (`--cache-to`, `--cache-from`): one entry per
//!   step key, looked up when the local cache misses, exported after the build.
//! - `report`: what the build tells while it runs; it never prints.
//! - [`commit`]: `tare commit`, a container's changes as one more layer on its image.
//!
//! It does not parse Dockerfiles, store blobs, write tar streams or run processes: those are
//! `tare-dockerfile`, `tare-store`, `tare-layer` and `tare-sandbox`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod annotations;
mod cache;
mod chmod;
pub mod commit;
pub mod config;
mod context;
pub mod context_source;
pub mod contexts;
mod copy;
mod dockerignore;
mod engine;
pub mod epoch;
mod error;
pub mod fetch;
mod fsops;
pub mod git;
mod key;
mod layer;
pub mod output;
mod plan;
mod platform;
pub mod remote_cache;
mod report;
mod run;
pub mod secrets;
mod stage;
mod steps;
mod target;
pub mod tree;

pub use cache::{layers as cache_layers, prune as prune_cache, PruneReport as CachePruneReport};
pub use context::{BuildOptions, Entitlement, StepSummary};
pub use engine::{build, build_platforms, BuildResult};
pub use error::Error;
pub use report::{Event, Reporter, Silent, StepId, Stream, TransferStep};
/// How RUN steps (and `tare run`) get their root filesystem: overlayfs, or copies where it is
/// refused.
pub use run::{snapshotter, Snapshotter};
pub use tare_registry::Platform;
pub use tare_sandbox::Network;
