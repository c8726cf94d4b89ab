//! `USER` resolution through the image's `/etc/passwd` and `/etc/group`, with Docker's (runc's)
//! rules: a numeric uid needs no passwd entry; a name must have one; an explicit group replaces
//! the primary group and ignores memberships, otherwise the user's memberships in
//! `/etc/group` become supplementary groups, after the primary group.

use std::path::PathBuf;

use crate::{layers, Error};

/// A resolved user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user ID the process runs as.
    pub uid: u32,
    /// The primary group ID.
    pub gid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// The home directory from passwd (`/` without an entry), for `HOME`.
    pub home: String,
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

struct GroupEntry {
    name: String,
    gid: u32,
    members: Vec<String>,
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`, empty for root) in the filesystem
/// made of `layers` (top first; see [`crate::Rootfs::layers`]).
pub fn resolve_user(layers: &[PathBuf], spec: &str) -> Result<User, Error> {
    let (user_arg, group_arg) = match spec.split_once(':') {
        Some((u, g)) => (u, g),
        None => (spec, ""),
    };
    let passwd = layers::read_file(layers, "/etc/passwd")?.unwrap_or_default();
    let passwd = parse_passwd(&String::from_utf8_lossy(&passwd));
    let numeric_uid = user_arg.parse::<u32>().ok();

    let found = passwd.iter().find(|e| match (user_arg, numeric_uid) {
        ("", _) => e.uid == 0,
        (_, Some(uid)) => e.uid == uid,
        (name, None) => e.name == name,
    });
    let mut user = User {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        home: "/".to_string(),
    };
    let mut name = None;
    match (found, numeric_uid) {
        (Some(entry), _) => {
            user.uid = entry.uid;
            user.gid = entry.gid;
            user.home = entry.home.clone();
            name = Some(entry.name.clone());
        }
        (None, Some(uid)) => user.uid = uid,
        (None, None) if user_arg.is_empty() => {}
        (None, None) => return Err(Error::UnknownUser(user_arg.to_string())),
    }

    if !group_arg.is_empty() || name.is_some() {
        let group = layers::read_file(layers, "/etc/group")?.unwrap_or_default();
        let groups = parse_group(&String::from_utf8_lossy(&group));
        if !group_arg.is_empty() {
            let numeric_gid = group_arg.parse::<u32>().ok();
            match groups.iter().find(|g| match numeric_gid {
                Some(gid) => g.gid == gid,
                None => g.name == group_arg,
            }) {
                Some(g) => user.gid = g.gid,
                None => match numeric_gid {
                    Some(gid) => user.gid = gid,
                    None => return Err(Error::UnknownGroup(group_arg.to_string())),
                },
            }
        } else if let Some(name) = &name {
            user.groups = groups
                .iter()
                .filter(|g| g.members.iter().any(|m| m == name))
                .map(|g| g.gid)
                .collect();
        }
    }
    // The primary group is a supplementary group too, as containerd and Docker set it.
    if !user.groups.contains(&user.gid) {
        user.groups.insert(0, user.gid);
    }
    Ok(user)
}

fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
                home: f.get(5).map(|h| h.to_string()).unwrap_or_default(),
            })
        })
        .collect()
}

fn parse_group(text: &str) -> Vec<GroupEntry> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(GroupEntry {
                name: f.first()?.to_string(),
                gid: f.get(2)?.parse().ok()?,
                members: f
                    .get(3)
                    .map(|m| {
                        m.split(',')
                            .filter(|s| !s.is_empty())
                            .map(|s| s.trim().to_string())
                            .collect()
                    })
                    .unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rootfs() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("etc")).unwrap();
        std::fs::write(
            tmp.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            tmp.path().join("etc/group"),
            "root:x:0:\nwheel:x:10:app,other\napp:x:1000:\naudio:x:29:app\n",
        )
        .unwrap();
        tmp
    }

    fn resolve(spec: &str) -> Result<User, Error> {
        let tmp = rootfs();
        resolve_user(&[tmp.path().to_path_buf()], spec)
    }

    #[test]
    fn names_get_their_primary_and_supplementary_groups() {
        let user = resolve("app").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 1000));
        assert_eq!(user.groups, vec![1000, 10, 29]);
        assert_eq!(user.home, "/home/app");
    }

    #[test]
    fn numeric_uids_use_the_passwd_entry_when_there_is_one() {
        assert_eq!(resolve("1000").unwrap().gid, 1000);
        let unknown = resolve("4242").unwrap();
        assert_eq!(
            (unknown.uid, unknown.gid, unknown.home.as_str()),
            (4242, 0, "/")
        );
    }

    #[test]
    fn an_explicit_group_replaces_the_primary_and_the_memberships() {
        let user = resolve("app:wheel").unwrap();
        assert_eq!((user.uid, user.gid), (1000, 10));
        assert_eq!(user.groups, vec![10]);
        assert_eq!(resolve("1000:77").unwrap().gid, 77);
    }

    #[test]
    fn unknown_names_are_errors() {
        assert!(matches!(resolve("nobody"), Err(Error::UnknownUser(n)) if n == "nobody"));
        assert!(matches!(
            resolve("app:nogroup"),
            Err(Error::UnknownGroup(_))
        ));
    }

    #[test]
    fn empty_spec_is_root() {
        let user = resolve("").unwrap();
        assert_eq!((user.uid, user.gid, user.home.as_str()), (0, 0, "/root"));
    }
}
