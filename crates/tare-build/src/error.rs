//! The one error type of tare-build, a leaf: it names no other module of the crate, so every
//! module can use it without closing a cycle.

use std::path::{Path, PathBuf};

/// A malformed `.dockerignore` or COPY wildcard pattern (an unclosed `[` class or a trailing
/// `\`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad pattern {pattern:?}: {reason}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Everything a build can fail with. Messages name the path, step or image involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system call on a host path (the context, the store's scratch, an output) failed.
    #[error("{path}")]
    Io {
        /// The file or directory the call was made on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The context's `.dockerignore` (or `Dockerfile.dockerignore`) has a bad pattern.
    #[error("reading {path}")]
    DockerIgnore {
        /// The ignore file.
        path: PathBuf,
        /// The pattern and what is wrong with it.
        #[source]
        source: PatternError,
    },
    /// Resolving a path of a source tree followed more symbolic links than Linux allows (40).
    #[error("too many levels of symbolic links resolving {path:?}")]
    SymlinkLoop {
        /// The path being resolved, relative to the tree's root.
        path: String,
    },
    /// A COPY/ADD source (or a wildcard that matched nothing) is not in its tree.
    #[error("{path:?} not found in {tree}")]
    SourceNotFound {
        /// The source as the instruction names it.
        path: String,
        /// The tree looked in (`the build context`, `stage builder`, an image).
        tree: String,
    },
    /// A COPY/ADD source wildcard that does not compile.
    #[error("bad wildcard {pattern:?}")]
    Wildcard {
        /// The source as written.
        pattern: String,
        /// What is wrong with it.
        #[source]
        source: PatternError,
    },
    /// A COPY of a directory whose destination is an existing file.
    #[error("cannot copy directory {src:?} onto file {dest:?}")]
    DirOntoFile {
        /// The source directory, relative to its tree.
        src: String,
        /// The destination file in the image.
        dest: String,
    },
    /// A directory the step needs is a file (or another non-directory) in the image, as
    /// BuildKit reports it ("mkdir /file: not a directory"); it is never replaced.
    #[error("mkdir /{path}: not a directory (the image has a file there)")]
    NotADirectory {
        /// The path in the image, without its leading `/`.
        path: String,
    },
    /// A `--chown` name in a stage that is still an empty `FROM scratch`: there is no
    /// /etc/passwd or /etc/group to read (BuildKit 0.25: "invalid user index: -1").
    #[error("--chown={spec}: a FROM scratch stage has no files yet, so no /etc/passwd or /etc/group to look a name up in (give numeric IDs)")]
    ChownNameOnScratch {
        /// The `--chown` value as written.
        spec: String,
    },
    /// An ADD URL that cannot be downloaded (a bad URL, an HTTP error, a body too large).
    #[error("fetching {url}: {reason}")]
    Fetch {
        /// The URL, as the instruction gives it.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A git source (ADD, `--build-context`, a git context) that is malformed or fails to
    /// fetch.
    #[error("git source {url}: {reason}")]
    Git {
        /// The URL with any credentials in it hidden.
        url: String,
        /// What went wrong (git's own message, with credentials hidden).
        reason: String,
    },
    /// An ADD `--checksum` that the downloaded content does not match.
    #[error("checksum of {url} is {actual}, expected {expected}")]
    Checksum {
        /// The downloaded URL.
        url: String,
        /// The digest `--checksum` gives.
        expected: String,
        /// The digest of the bytes downloaded.
        actual: String,
    },
    /// A `--mount` target that would hide the root or the kernel's /proc.
    #[error("--mount target {target:?} is not allowed: a mount cannot cover / or /proc")]
    MountTarget {
        /// The target as the instruction gives it.
        target: String,
    },
    /// A secret (`--secret`, `RUN --mount=type=secret`) that cannot be given to the step.
    #[error("secret {id:?}: {reason}")]
    Secret {
        /// The secret's id.
        id: String,
        /// Why it cannot be read or mounted.
        reason: String,
    },
    /// A `RUN --mount=type=ssh,required` whose agent the build was not given.
    #[error("no ssh agent {id:?} was given (tare build --ssh {id}[=SOCKET|KEY])")]
    NoSshAgent {
        /// The mount's id (`default` when it names none).
        id: String,
    },
    /// Content read with a bound that holds more: `what` is a path of the image or context,
    /// `secret "ID"` or `the Dockerfile on standard input`.
    #[error("{what}: larger than {limit} bytes")]
    TooLarge {
        /// What was read.
        what: String,
        /// The bound, in bytes.
        limit: u64,
    },
    /// A Dockerfile or ignore file that cannot be one (not a regular file).
    #[error("{}: {reason}", path.display())]
    BuildFile {
        /// The file's host path.
        path: PathBuf,
        /// Why it cannot be read as one.
        reason: &'static str,
    },
    /// A socket among a COPY's sources (the host path): a socket cannot be copied.
    #[error("{}: sockets cannot be copied", path.display())]
    Socket {
        /// The socket's host path.
        path: PathBuf,
    },
    /// A bad COPY/ADD `--exclude` pattern.
    #[error("--exclude")]
    Exclude {
        /// The pattern and what is wrong with it.
        #[source]
        source: PatternError,
    },
    /// A COPY/ADD `--chmod` value that is neither an octal nor a symbolic mode.
    #[error("invalid --chmod={value}: {reason}")]
    Chmod {
        /// The value as written.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// ADD `--checksum` with a source that is not downloaded (a context file, a heredoc).
    #[error(
        "--checksum={checksum}: {name} is not an HTTP(S) or git source, the only ones a \
         checksum can verify"
    )]
    ChecksumSource {
        /// The `--checksum` value.
        checksum: String,
        /// The source it cannot apply to.
        name: String,
    },
    /// `FROM --platform=VALUE` that is not a platform.
    #[error("{file}:{line}: FROM --platform={value}: {reason}")]
    FromPlatform {
        /// The Dockerfile's name.
        file: String,
        /// 1-based line of the FROM.
        line: usize,
        /// The value after expansion.
        value: String,
        /// Why it is not a platform.
        reason: String,
    },
    /// `FROM name` where `name` is a directory given with `--build-context`.
    #[error(
        "build context {name:?} is a directory ({}): FROM needs an image \
         (docker-image:// or oci-layout://); use the directory with COPY --from",
        path.display()
    )]
    FromDirectory {
        /// The build context's name.
        name: String,
        /// The directory it names.
        path: PathBuf,
    },
    /// A RUN of a foreign platform (`linux/arm64` on amd64) without a usable emulator.
    #[error("RUN for {platform} needs emulation on this {host} machine: {missing}")]
    NeedsEmulation {
        /// The stage's platform (`linux/arm64`).
        platform: String,
        /// The machine's platform.
        host: String,
        /// What is missing, and the command that fixes it.
        missing: String,
    },
    /// An environment variable tare reads with a value it does not know.
    #[error("{name}={value}: {reason}")]
    BadVariable {
        /// The variable (`TARE_SNAPSHOTTER`).
        name: &'static str,
        /// Its value.
        value: String,
        /// The values it takes, as a sentence.
        reason: &'static str,
    },
    /// Standard input (`tare build -`) could not be read.
    #[error("reading the context or Dockerfile from standard input")]
    Stdin {
        /// The read's error.
        #[source]
        source: std::io::Error,
    },
    /// A thread the build needs could not be started (`what`: `the ssh relay`).
    #[error("starting {what}")]
    Thread {
        /// The thread's purpose.
        what: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A step that is not config-only reached the config step (a bug of the dispatcher).
    #[error("{keyword} is not a config instruction")]
    NotConfig {
        /// The instruction's keyword.
        keyword: &'static str,
    },
    /// A stage this one reads (`FROM`, `COPY --from`, `RUN --mount from=`) failed; its own
    /// error is reported where it happened, so a build reports this one only when no stage
    /// has a first-hand error.
    #[error("stage {stage} failed: {message}")]
    DependencyFailed {
        /// The failed stage's index (0-based, in Dockerfile order).
        stage: usize,
        /// Its error's message.
        message: String,
    },
    /// A RUN flag's value tare does not know (`RUN --network=bridge`).
    #[error("unsupported {} {value:?} (use {choices})", flag_subject(flag))]
    Unsupported {
        /// The flag, without its dashes (`network`, `security`).
        flag: &'static str,
        /// The value as written.
        value: String,
        /// The values the flag takes, as a sentence (`default, none or host`).
        choices: &'static str,
        /// 1-based Dockerfile line of the instruction.
        line: usize,
    },
    /// A RUN flag's value that needs an entitlement the build was not given.
    #[error("RUN --{flag}={value} is not allowed: grant it with tare build --allow {entitlement}")]
    NotAllowed {
        /// The flag, without its dashes (`security`).
        flag: &'static str,
        /// The value (`insecure`).
        value: &'static str,
        /// The entitlement `--allow` takes (`security.insecure`).
        entitlement: &'static str,
        /// 1-based Dockerfile line of the instruction.
        line: usize,
    },
    /// A build option's value that does not parse (`--output`, `--secret`, `--ssh`, ...).
    #[error("{flag} {value}: {reason}")]
    BadOption {
        /// The option with its dashes (`--secret`).
        flag: &'static str,
        /// The value as the message shows it (quoted where it may hold spaces).
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A `--cache-to type=local` directory whose `index.json` is not an OCI index tare can add
    /// entries to.
    #[error("{}: not an OCI index ({reason}); remove the directory to start a new cache", path.display())]
    NotAnIndex {
        /// The `index.json` file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A cache directory (`tare cache ls|prune --dir`) that cannot be read as one.
    #[error("the cache directory {}: {reason}", dir.display())]
    CacheDir {
        /// The directory.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file of the context or of a stage changed between two reads of one build (a race
    /// with another process, or an attack swapping files): the build stops.
    #[error("{path}: the file changed while the build read it")]
    FileChanged {
        /// The file, as its tree names it.
        path: String,
    },
    /// A path whose last part is empty, `.` or `..`, where a file is to be written.
    #[error("/{path}: not a name a file can be written to")]
    NotAFileName {
        /// The path in the image, without its leading `/`.
        path: String,
    },
    /// A thread of the build panicked (a bug): `what` names it (`stage 2`, `the export thread`).
    #[error("{what} panicked")]
    Panicked {
        /// The thread.
        what: String,
    },
    /// A wait for a stage the Dockerfile does not have (a bug).
    #[error("no stage {index}")]
    NoStage {
        /// The stage index waited for.
        index: usize,
    },
    /// The build ended without the target stage's result (a bug).
    #[error("the target stage made no result")]
    NoResult,
    /// A value tare made could not be encoded as JSON (`what`: a cache key, a cache record).
    #[error("{what}: {error}")]
    Encode {
        /// The value.
        what: &'static str,
        /// serde_json's error.
        error: serde_json::Error,
    },
    /// A step failed: the error of the instruction at `file:line`.
    #[error("{file}:{line}: {instruction}")]
    Step {
        /// The Dockerfile's name.
        file: String,
        /// 1-based line where the instruction starts.
        line: usize,
        /// The instruction as written.
        instruction: String,
        /// What failed.
        #[source]
        source: Box<Error>,
    },
    /// A RUN's command exited with a code other than 0.
    #[error("{file}:{line}: RUN {command} failed with exit code {code}")]
    RunFailed {
        /// The Dockerfile's name.
        file: String,
        /// 1-based line of the RUN.
        line: usize,
        /// The argument vector, quoted as a shell would need it.
        command: String,
        /// The exit code (128 + the signal for a killed process).
        code: i32,
    },
    /// A lazy `--cache-from` hit's layer could not be fetched when it was needed (the build
    /// starts again without that entry, see the `remote_cache` module).
    #[error("the layer {digest} of the cache entry {tag} in {repository} could not be fetched: {reason}")]
    RemoteLayer {
        /// The layer blob's digest.
        digest: tare_store::Digest,
        /// The cache entry's tag.
        tag: String,
        /// Where the cache is (a repository or a directory).
        repository: String,
        /// Why the fetch failed.
        reason: String,
    },
    // `tare commit` (commit.rs).
    /// The image a container was started from is gone, or no longer has its layers.
    #[error("container {container}: its image {image} {reason}")]
    ContainerImage {
        /// The container's name.
        container: String,
        /// The image's name and ID as the container recorded them.
        image: String,
        /// What is wrong with the image (`is no longer in the store`).
        reason: &'static str,
    },
    /// Reading or storing a container's changes failed.
    #[error("container {container}: {what}")]
    ContainerChanges {
        /// The container's name.
        container: String,
        /// What failed (`reading its changes`).
        what: &'static str,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// The build was stopped (SIGINT or SIGTERM) while a step ran.
    #[error("the build was interrupted")]
    Interrupted,
    /// A FROM image that is not in the store and could not be pulled.
    #[error("base image {name:?} is neither in the store nor pullable")]
    BaseImage {
        /// The image reference as FROM gives it after expansion.
        name: String,
        /// Why the pull failed.
        #[source]
        source: Box<tare_registry::Error>,
    },
    /// The Dockerfile does not parse or evaluate (located: file, line, snippet).
    #[error(transparent)]
    Dockerfile(#[from] tare_dockerfile::Error),
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] tare_store::Error),
    /// Reading or writing a layer failed.
    #[error(transparent)]
    Layer(#[from] tare_layer::Error),
    /// Diffing a step's upper directory failed.
    #[error(transparent)]
    Diff(#[from] tare_layer::diff::DiffError),
    /// Running a step's process failed (before or around the process: a RUN that exits
    /// non-zero is [`Error::RunFailed`]).
    #[error(transparent)]
    Sandbox(#[from] tare_sandbox::Error),
    /// A registry operation (pull, push, cache import or export) failed.
    #[error(transparent)]
    Registry(#[from] tare_registry::Error),
}

/// What an [`Error::Unsupported`] flag sets, for its message.
fn flag_subject(flag: &str) -> String {
    match flag {
        "network" | "security" => format!("{flag} mode"),
        other => format!("--{other} value"),
    }
}

/// Builds an `Error::Io` for `path`, for `map_err`.
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_cache_index_names_its_file() {
        let err = Error::NotAnIndex {
            path: "/tmp/cache/index.json".into(),
            reason: "no manifests list".into(),
        };
        assert_eq!(
            err.to_string(),
            "/tmp/cache/index.json: not an OCI index (no manifests list); remove the directory to start a new cache"
        );
    }

    #[test]
    fn a_bad_from_platform_names_the_dockerfile_line() {
        let err = Error::FromPlatform {
            file: "Dockerfile".into(),
            line: 3,
            value: "linux/".into(),
            reason: "missing architecture".into(),
        };
        assert_eq!(
            err.to_string(),
            "Dockerfile:3: FROM --platform=linux/: missing architecture"
        );
    }

    #[test]
    fn path_errors_name_the_path() {
        let socket = Error::Socket {
            path: "/ctx/run/app.sock".into(),
        };
        assert_eq!(
            socket.to_string(),
            "/ctx/run/app.sock: sockets cannot be copied"
        );
        let big = Error::TooLarge {
            what: "/etc/passwd".into(),
            limit: 4096,
        };
        assert_eq!(big.to_string(), "/etc/passwd: larger than 4096 bytes");
        let dir = Error::FromDirectory {
            name: "src".into(),
            path: "/home/u/src".into(),
        };
        assert!(
            dir.to_string().starts_with(
                "build context \"src\" is a directory (/home/u/src): FROM needs an image"
            ),
            "{dir}"
        );
        let target = Error::MountTarget {
            target: "../..".into(),
        };
        assert_eq!(
            target.to_string(),
            "--mount target \"../..\" is not allowed: a mount cannot cover / or /proc"
        );
    }

    #[test]
    fn option_and_variable_errors_name_the_flag_and_value() {
        let bad = Error::BadVariable {
            name: "TARE_SNAPSHOTTER",
            value: "fuse".into(),
            reason: "use overlay, copy or auto",
        };
        assert_eq!(
            bad.to_string(),
            "TARE_SNAPSHOTTER=fuse: use overlay, copy or auto"
        );
        let chmod = Error::Chmod {
            value: "u+q".into(),
            reason: "bad symbol".into(),
        };
        assert_eq!(chmod.to_string(), "invalid --chmod=u+q: bad symbol");
        let sum = Error::ChecksumSource {
            checksum: "sha256:00".into(),
            name: "a.txt".into(),
        };
        assert!(
            sum.to_string()
                .starts_with("--checksum=sha256:00: a.txt is not"),
            "{sum}"
        );
    }
}
