//! Platforms (`linux/arm64/v8`) and how an index entry is matched against one.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// An OS, architecture and optional variant, in Go's names (`linux`, `amd64`, `arm64`, `v8`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    /// The operating system (`linux`).
    pub os: String,
    /// The CPU architecture (`amd64`, `arm64`).
    pub architecture: String,
    /// The CPU variant (`v7`, `v8`); `None` stands for the architecture's default (`v8` on `arm64`,
    /// `v7` on `arm`) or none.
    pub variant: Option<String>,
}

impl Platform {
    /// The platform this process runs on.
    pub fn host() -> Platform {
        let architecture = tare_store::config::host_architecture().to_string();
        let variant = match architecture.as_str() {
            "arm64" => Some("v8".to_string()),
            "arm" => Some("v7".to_string()),
            _ => None,
        };
        Platform {
            os: "linux".to_string(),
            architecture,
            variant,
        }
    }

    /// Whether an index entry for `os`/`architecture`/`variant` can run here. A variant given
    /// on only one side matches when it is the architecture's default (`arm64` is `arm64/v8`).
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != architecture {
            return false;
        }
        let default = match architecture {
            "arm64" => Some("v8"),
            "arm" => Some("v7"),
            _ => None,
        };
        let want = self.variant.as_deref().or(default);
        let have = variant.filter(|v| !v.is_empty()).or(default);
        want == have
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    fn from_str(text: &str) -> Result<Platform> {
        let parts: Vec<&str> = text.split('/').collect();
        let ok = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        if !(2..=3).contains(&parts.len()) || !parts.iter().all(|p| ok(p)) {
            return Err(Error::InvalidPlatform(text.to_string()));
        }
        let architecture = match parts[1] {
            "x86_64" | "x86-64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        Ok(Platform {
            os: parts[0].to_string(),
            architecture: architecture.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse_and_normalise_architecture_names() {
        let p: Platform = "linux/aarch64".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        let p: Platform = "linux/arm/v6".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v6"));
        for bad in ["", "linux", "linux/", "a/b/c/d", "Linux/amd64"] {
            assert!(bad.parse::<Platform>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn default_variants_match_entries_without_one() {
        let arm64: Platform = "linux/arm64".parse().unwrap();
        assert!(arm64.matches("linux", "arm64", Some("v8")));
        assert!(arm64.matches("linux", "arm64", None));
        let v6: Platform = "linux/arm/v6".parse().unwrap();
        assert!(!v6.matches("linux", "arm", None));
        assert!(v6.matches("linux", "arm", Some("v6")));
        let amd: Platform = "linux/amd64".parse().unwrap();
        assert!(!amd.matches("linux", "arm64", None));
        assert!(!amd.matches("windows", "amd64", None));
    }
}
