//! tare-build: from a parsed Dockerfile to an image in the store.
//!
//! # What it owns
//!
//! - [`dockerignore`]: Docker's `.dockerignore` rules.
//! - [`tree`]: the trees a step reads (the context, snapshots merged like overlayfs).
//! - [`copy`]: COPY and ADD into a fresh snapshot directory.
//!
//! It does not parse Dockerfiles (`tare-dockerfile`), store blobs (`tare-store`), write or
//! compress layers (`tare-layer`) or run processes (`tare-sandbox`), and it never prints.

pub mod copy;
pub mod dockerignore;
mod error;
pub mod tree;

pub use error::Error;
