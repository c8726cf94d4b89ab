//! `SOURCE_DATE_EPOCH`: the one time a reproducible build may write.
//!
//! The value is BuildKit's: the build arg `SOURCE_DATE_EPOCH` (the CLI turns the environment
//! variable and `--source-date-epoch` into that arg, as buildx does), a whole number of
//! seconds since 1970. With it, BuildKit's exporter clamps the image's `created` and the
//! `created` of every history entry this build made to the epoch (`min(created, epoch)`; the
//! base image's entries keep theirs), and `rewrite-timestamp` clamps the mtime of every file
//! in the layers this build made the same way. tare does the same, but clamps while each
//! layer's tar is first written ([`tare_layer::diff::DiffOptions::mtime_clamp`]) instead of
//! recompressing every layer at export.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::error::Error;

/// The build arg (and environment variable) that carries the epoch.
pub const SOURCE_DATE_EPOCH: &str = "SOURCE_DATE_EPOCH";

/// The latest epoch accepted: 9999-12-31T23:59:59Z, the last second RFC 3339 can write.
const MAX_EPOCH: i64 = 253_402_300_799;

/// A parsed `SOURCE_DATE_EPOCH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Epoch(i64);

impl Epoch {
    /// Parses the value as BuildKit does (decimal seconds); an empty value means no epoch.
    /// `from` names where the value came from, for the error.
    pub fn parse(value: &str, from: &'static str) -> Result<Option<Epoch>, Error> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(None);
        }
        match value.parse::<i64>() {
            Ok(n) if (0..=MAX_EPOCH).contains(&n) => Ok(Some(Epoch(n))),
            _ => Err(Error::BadOption {
                flag: from,
                value: format!("{value:?}"),
                reason: format!("not whole seconds since 1970-01-01 (0 to {MAX_EPOCH})"),
            }),
        }
    }

    /// The epoch of a build: its `SOURCE_DATE_EPOCH` build arg.
    pub fn of_build_args(
        args: &std::collections::BTreeMap<String, String>,
    ) -> Result<Option<Epoch>, Error> {
        match args.get(SOURCE_DATE_EPOCH) {
            Some(v) => Epoch::parse(v, "--build-arg SOURCE_DATE_EPOCH"),
            None => Ok(None),
        }
    }

    /// Seconds since 1970-01-01 UTC.
    pub fn seconds(self) -> i64 {
        self.0
    }

    /// As an RFC 3339 time in UTC, in whole seconds (`2023-11-14T22:13:20Z`), as Go writes
    /// `time.Unix(n, 0).UTC()`.
    pub fn rfc3339(self) -> String {
        DateTime::<Utc>::from_timestamp(self.0, 0)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    /// `min(created, epoch)`: a time after the epoch (or unreadable, or missing) becomes the
    /// epoch; an earlier one is kept as written.
    pub fn clamp_created(self, created: Option<&str>) -> String {
        let epoch = DateTime::<Utc>::from_timestamp(self.0, 0).unwrap_or_default();
        let earlier = created.filter(|c| {
            DateTime::parse_from_rfc3339(c).is_ok_and(|t| t.with_timezone(&Utc) <= epoch)
        });
        match earlier {
            Some(c) => c.to_string(),
            None => self.rfc3339(),
        }
    }

    /// The mtime clamp for layer tars (an epoch is never negative).
    pub fn mtime_clamp(self) -> u64 {
        u64::try_from(self.0).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_seconds_and_refuses_the_rest() {
        assert_eq!(Epoch::parse("", "x").unwrap(), None);
        assert_eq!(Epoch::parse(" 0 ", "x").unwrap(), Some(Epoch(0)));
        assert_eq!(
            Epoch::parse("1700000000", "x").unwrap(),
            Some(Epoch(1_700_000_000))
        );
        for bad in ["-1", "1.5", "12abc", "99999999999999999999", "253402300800"] {
            let err = Epoch::parse(bad, "SOURCE_DATE_EPOCH")
                .unwrap_err()
                .to_string();
            assert!(
                err.starts_with(&format!("SOURCE_DATE_EPOCH \"{bad}\": not whole seconds")),
                "{bad}: {err}"
            );
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn formats_as_go_does() {
        assert_eq!(Epoch(1_700_000_000).rfc3339(), "2023-11-14T22:13:20Z");
        assert_eq!(Epoch(0).rfc3339(), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn clamps_later_times_and_keeps_earlier_ones() {
        let e = Epoch(1_700_000_000);
        assert_eq!(
            e.clamp_created(Some("2026-01-01T00:00:00.123Z")),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(
            e.clamp_created(Some("2001-02-03T04:05:06Z")),
            "2001-02-03T04:05:06Z"
        );
        assert_eq!(
            e.clamp_created(Some("2023-11-14T22:13:20.5Z")),
            "2023-11-14T22:13:20Z"
        );
        assert_eq!(e.clamp_created(None), "2023-11-14T22:13:20Z");
        assert_eq!(e.clamp_created(Some("yesterday")), "2023-11-14T22:13:20Z");
    }
}
