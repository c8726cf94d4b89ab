//! `RUN --mount=type=cache,sharing=private` across builds, as BuildKit 0.25 keeps it
//! (`getRefCacheDirNoCache`): a build takes the id's first directory nobody holds, so one
//! build after another sees what the last one wrote. (Concurrent users, which get another
//! directory that is kept too, are tested in tare-store's unit tests.)

use super::{ctx_dir, file_in, setup};

#[test]
fn a_private_cache_mount_keeps_its_directory_across_builds() {
    let t = setup();
    for run in ["1", "2", "3"] {
        // A changed build arg reruns the step; the cache is all that carries state.
        t.write(
            "ctx/Dockerfile",
            "FROM busybox\nARG RUN\nRUN --mount=type=cache,id=p,target=/c,sharing=private \
             echo $RUN >> /c/log && cp /c/log /seen\n",
        );
        t.ok(&[
            "build",
            "-q",
            "-t",
            "private",
            "--build-arg",
            &format!("RUN={run}"),
            &ctx_dir(&t),
        ]);
    }
    assert_eq!(file_in(&t, "private", "seen").as_deref(), Some("1\n2\n3\n"));
    assert_eq!(file_in(&t, "private", "c/log"), None);
}
