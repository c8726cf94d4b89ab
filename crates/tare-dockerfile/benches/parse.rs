//! Parse, evaluate and expand a generated 1,000-instruction Dockerfile (target: under 5 ms).
//! A plain timing loop (`cargo bench -p tare-dockerfile`), printing the median and the best
//! of many runs; no timing assertions anywhere.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// About 1,000 instructions of every kind over 10 stages, with continuations, heredocs,
/// JSON forms, flags and variables.
fn dockerfile() -> String {
    let mut text =
        String::from("# syntax=docker/dockerfile:1\nARG BASE=alpine:3.20\nARG VERSION=1.0\n");
    let mut count = 2;
    for stage in 0..10 {
        let _ = writeln!(
            text,
            "FROM --platform=$BUILDPLATFORM ${{BASE}} AS stage{stage}"
        );
        count += 1;
        while count < (stage + 1) * 100 {
            let i = count;
            let _ = match i % 12 {
                0 => writeln!(text, "ENV APP_{i}=/opt/app{i} PATH=/opt/app{i}/bin:$PATH"),
                1 => writeln!(text, "ARG OPT_{i}=\"value {i}\""),
                2 => writeln!(text, "RUN --mount=type=cache,target=/var/cache/{i} set -e; \\\n    echo building {i} \\\n    && make -j2 target{i}"),
                3 => writeln!(text, "COPY --chown=app:app --chmod=0644 src/{i}/ /opt/app{i}/src/"),
                4 => writeln!(text, "ADD --checksum=sha256:abc{i} https://example.com/f{i}.tar.gz /tmp/"),
                5 => writeln!(text, "LABEL org.example.build{i}=\"${{VERSION}}\" stage=\"{stage}\""),
                6 => writeln!(text, "WORKDIR /opt/app{i}/${{OPT_{}:-work}}", i - 5),
                7 => writeln!(text, "RUN [\"/bin/sh\", \"-c\", \"echo {i}\"]"),
                8 => writeln!(text, "COPY <<EOF /etc/conf{i}\nkey={i}\nhome=$HOME\nEOF"),
                9 => writeln!(text, "EXPOSE {} {}/udp", 8000 + i, 9000 + i),
                10 => writeln!(text, "USER app:app\nHEALTHCHECK --interval=30s CMD wget -q http://localhost:{i}/"),
                _ => writeln!(text, "# comment {i}\nCMD [\"/opt/app{i}/bin/run\", \"--port\", \"{i}\"]"),
            };
            count += if i % 12 == 10 { 2 } else { 1 };
        }
    }
    text
}

fn main() {
    let text = dockerfile();
    let build_args: BTreeMap<String, String> = [("VERSION".to_string(), "2.0".to_string())].into();
    let base_env = vec![
        ("PATH".to_string(), "/usr/bin:/bin".to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ];
    let run = || {
        let ast = tare_dockerfile::parse(&text, "Dockerfile").expect("benchmark Dockerfile parses");
        let dockerfile = tare_dockerfile::evaluate(&ast, &build_args, None)
            .expect("benchmark Dockerfile evaluates");
        let mut expanded = 0;
        for stage in &dockerfile.stages {
            expanded += stage
                .expand(&base_env)
                .expect("benchmark Dockerfile expands")
                .len();
        }
        (ast.children.len(), expanded)
    };
    let (instructions, expanded) = run();
    // Warm up, then time.
    for _ in 0..20 {
        black_box(run());
    }
    let mut times: Vec<Duration> = (0..200)
        .map(|_| {
            let start = Instant::now();
            black_box(run());
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "parse+evaluate+expand, {instructions} instructions ({expanded} after FROM), {} bytes: median {:.3} ms, best {:.3} ms (target < 5 ms)",
        text.len(),
        times[times.len() / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
    );
}
