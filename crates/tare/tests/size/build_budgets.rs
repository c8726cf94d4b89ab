//! `tare build` budgets (`--max-size`, `--max-waste`, `--max-layers`) and `--squash[=all]`.

use super::*;

const SEED_WASTE: &str = "FROM busybox\nRUN dd if=/dev/zero of=/bigfile bs=1M count=10\nRUN rm /bigfile\nRUN echo \"the 10 MB are still shipped\"\n";

fn seed_context(ctx: &TestContext) -> String {
    ctx.import_busybox("busybox:latest");
    let dir = ctx.path().join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), SEED_WASTE).unwrap();
    dir.to_string_lossy().into_owned()
}

#[test]
fn build_over_max_waste_fails_naming_the_budget_and_keeps_the_cache() {
    let ctx = TestContext::new();
    let dir = seed_context(&ctx);
    let out = ctx.run(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "w:1",
        "--max-waste",
        "1MB",
        &dir,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("--max-waste 1MB"), "{text}");
    assert!(text.contains("10.5MB") && text.contains("over"), "{text}");
    // The layers were kept: the same build without budgets runs nothing again.
    let again = ctx.run(&["build", "--progress", "plain", "-t", "w:1", &dir]);
    assert!(again.status.success());
    let text = String::from_utf8_lossy(&again.stdout).to_string()
        + &String::from_utf8_lossy(&again.stderr);
    assert!(text.matches("cached").count() >= 3, "{text}");
}

#[test]
fn build_size_and_layer_budgets_set_the_exit_code() {
    let ctx = TestContext::new();
    let dir = seed_context(&ctx);
    ctx.ok(&[
        "build",
        "-t",
        "w:1",
        "--max-size",
        "1GB",
        "--max-layers",
        "10",
        &dir,
    ]);
    let err = ctx.run(&["build", "-t", "w:1", "--max-size", "10MiB", &dir]);
    assert_eq!(err.status.code(), Some(1));
    let err = ctx.run(&["build", "-t", "w:1", "--max-layers", "2", &dir]);
    assert_eq!(err.status.code(), Some(1));
    let err = ctx.run(&["build", "-t", "w:1", "--max-size", "ten", &dir]);
    assert_eq!(err.status.code(), Some(2), "clap rejects a bad size");
}

#[test]
fn build_squash_keeps_the_base_and_the_files() {
    let ctx = TestContext::new();
    let dir = seed_context(&ctx);
    ctx.ok(&["build", "-t", "plain:1", &dir]);
    ctx.ok(&["build", "-t", "sq:1", "--squash", &dir]);
    ctx.ok(&["build", "-t", "sq:all", "--squash=all", &dir]);
    let plain = analyze_json(&ctx, "plain:1");
    let sq = analyze_json(&ctx, "sq:1");
    assert_eq!(sq["layers"].as_array().unwrap().len(), 2);
    assert_eq!(sq["layers"][0]["diff_id"], plain["layers"][0]["diff_id"]);
    assert_eq!(sq["wasted_bytes"], 0);
    assert_eq!(
        analyze_json(&ctx, "sq:all")["layers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let files = export_contents(&ctx, "plain:1");
    assert_eq!(files, export_contents(&ctx, "sq:1"));
    assert_eq!(files, export_contents(&ctx, "sq:all"));
}
