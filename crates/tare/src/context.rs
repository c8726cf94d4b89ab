//! What every subcommand receives: where the store lives, and how to open it.

use std::path::PathBuf;

/// Global settings shared by all subcommands.
#[derive(Debug, Clone)]
pub struct Context {
    /// The store directory (`--root`, `TARE_ROOT`, or the default).
    pub root: PathBuf,
    /// The store, opened on first use; one per process (it holds the store's shared lock).
    store: std::sync::OnceLock<tare_store::Store>,
}

impl Context {
    pub fn new(root: Option<PathBuf>) -> Self {
        Context {
            root: root.unwrap_or_else(default_root),
            store: std::sync::OnceLock::new(),
        }
    }

    /// Opens the store at `root` (creating it when needed), once per process.
    pub fn store(&self) -> anyhow::Result<tare_store::Store> {
        if let Some(store) = self.store.get() {
            return Ok(store.clone());
        }
        let store = tare_store::Store::open(&self.root).map_err(|e| {
            anyhow::Error::new(e).context(format!("opening the store at {}", self.root.display()))
        })?;
        Ok(self.store.get_or_init(|| store).clone())
    }
}

/// `/var/lib/tare` for root, `$XDG_DATA_HOME/tare` (or `~/.local/share/tare`) otherwise,
/// rootless tare included (it is root only inside its own user namespace).
pub fn default_root() -> PathBuf {
    // The owner of /proc/self is the effective uid: no libc call needed for one check.
    let is_root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    if is_root && tare_sandbox::userns::rootless().is_none() {
        return PathBuf::from("/var/lib/tare");
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("tare");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    PathBuf::from(home).join(".local/share/tare")
}
