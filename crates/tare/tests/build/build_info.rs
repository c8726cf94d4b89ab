//! The build record (`tare inspect`'s `build_info`): the Dockerfile, the base layer count and,
//! per history entry, the Dockerfile line and the stage of the step that made it.

use super::{ctx_dir, inspect, setup};

#[test]
fn the_record_names_the_stage_and_line_of_each_history_entry() {
    let t = setup();
    t.write(
        "ctx/Dockerfile.app",
        "FROM busybox AS base\nENV A=1\nRUN echo a > /a\n\nFROM base\nRUN echo b > /b\nCMD [\"sh\"]\n",
    );
    let ctx = ctx_dir(&t);
    let file = format!("{ctx}/Dockerfile.app");
    t.ok(&["build", "-q", "-f", &file, "-t", "rec:1", &ctx]);
    let json = inspect(&t, "rec:1");
    let info = &json["build_info"];
    // The Dockerfile as `-f` named it.
    assert_eq!(info["dockerfile"], file.as_str(), "{info}");
    assert_eq!(info["base_layers"], 1, "{info}");
    let history = info["history"].as_array().expect("history");
    let config_history = json["config"]["history"]
        .as_array()
        .expect("config history");
    assert_eq!(history.len(), config_history.len(), "{info}");
    // busybox's own entries come first and no step made them.
    let own = &history[history.len() - 4..];
    assert!(
        history[..history.len() - 4].iter().all(|h| h.is_null()),
        "{info}"
    );
    let got: Vec<(u64, &str)> = own
        .iter()
        .map(|h| {
            assert_eq!(h["file"], file.as_str(), "{h}");
            (h["line"].as_u64().unwrap(), h["stage"].as_str().unwrap())
        })
        .collect();
    assert_eq!(
        got,
        [(2, "base"), (3, "base"), (6, "1"), (7, "1")],
        "{info}"
    );
}
