//! The attack suite: every way a Dockerfile, a build context, an image or a registry could reach
//! the host, tried against the real `tare` binary. Each attack leaves canary files outside the
//! store and checks that they are untouched and that tare failed (or succeeded) harmlessly, with
//! a clear error.
//!
//! One module per class of attack:
//! - `fs_writes`: COPY/ADD/WORKDIR writes through symlinks made by the context, an archive, an
//!   earlier source of the same step or a `--from` stage; tar slip and absolute paths in ADD.
//! - `sandbox`: device nodes, setuid files, seccomp (keyctl and friends), the session keyring,
//!   host abstract sockets, the network namespace.
//! - `store`: store permissions, tampered blobs, huge tar headers, layer xattrs, whiteout escapes.
//! - `crash`: SIGKILL at random points of build, import, load and pull; leftovers reclaimed.
//! - `registry`: a registry that tries to steal credentials, oversized answers.
//! - `cache_inline`: forged inline caches in a pushed image (`--cache-to type=inline`): layers
//!   of another repository, layers that are not their diffID, inputs that do not hash to
//!   the key, malformed, future-format and huge records.
//! - `cache_local`: hostile cache directories (`--cache-from type=local`): symlinks, fifos,
//!   huge indexes, blobs that are not their digest or diffID, exports through symlinks.
//! - `remote_cache`: forged entries in a build cache in a registry (another parent, inputs
//!   that do not hash to the key, malformed or huge configs, layers that are not their
//!   diffID, bytes that are not their digest).
//! - `rootless`: rootless tare gives its user no file of another host user, no setuid root file,
//!   no write to root's files through a volume, no use of root's store.
//! - `secrets`: secret and ssh mounts with `..` ids and targets, hostile secret sources,
//!   mount points over image files and through image links.
//! - `mounts`: RUN --mount sources, cache ids and targets that try to reach the host.
//! - `git`: ADD of git URLs and contexts from git or stdin: option injection, subdirs and
//!   symlinks leaving the repository, submodules, silent servers, hostile context tars.
//! - `hostile_context`: a context's Dockerfile and ignore files that are devices, fifos or
//!   symlinks out of the context.
//! - `load_index`: `tare load` of multi-platform OCI archives whose index names missing
//!   blobs, lists another index or thousands of images.
//! - `load_unnamed`: the same for an unnamed index (kept whole under its digest): an index
//!   listing itself through a blob of `index.json`, indexes nested deep, a manifest blob that
//!   is an index, an index none of whose platforms is complete.
//! - `outputs`: `build -o type=local` of an image whose links point at the host.
//! - `diff_archives`: `tare diff` of hostile archives (paths and links leaving them, blobs
//!   that are not their digest, huge configs, layers that climb out or whiteout host paths).
//! - `cgroup_parent`: `--cgroup-parent` values that climb out of the cgroup hierarchy, a RUN
//!   step moving itself out of its cgroup, rootless tare and hierarchies it cannot write.
//! - `copy_stamps`: the saved stamps of a running container on copies, forged, replaced by
//!   symlinks or huge, and a container swapping its directories for links to the host while
//!   `tare commit` reads it.
//! - `slim`: `tare slim` on images linking to host files, probes opening thousands of files
//!   or leaving processes behind.

#[path = "../util/mod.rs"]
mod util;

mod add_url;
mod cache_inline;
mod cache_local;
mod cgroup_parent;
mod copy_stamps;
mod crash;
mod diff_archives;
mod fs_writes;
mod git;
mod hostile_context;
mod load_index;
mod load_unnamed;
mod mounts;
mod outputs;
mod registry;
mod remote_cache;
mod rootless;
mod rootless_exec;
mod sandbox;
mod secrets;
mod slim;
mod slim_rootless;
mod store;
