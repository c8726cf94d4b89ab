//! Renders build events on stderr: `--progress auto|tty|plain|json`.
//!
//! - `plain`: one line per event, prefixed with the step number like BuildKit's plain output
//!   (`#3 [builder 2/4] RUN make`, `#3 CACHED`, `#3 0.412 log line`, `#3 DONE 0.5s`); stable,
//!   for CI and tests. A pull's blobs print when they start and when they end.
//! - `json`: one JSON object per event and line (see [`event_json`] for the fields).
//! - `tty`: a live view drawn with indicatif, as BuildKit's: each running step is a line with
//!   its timer and, under it, its last [`LOG_LINES`] lines of output and a bar per blob it
//!   moves; a finished step collapses to one line (`=> [stage 2/4] RUN make  3.1s`) above the
//!   live area. `auto` picks it on a terminal and `plain` otherwise. `NO_COLOR` turns the
//!   colours off.
use std::collections::{HashMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use serde_json::json;
use tare_build::{Event, Reporter, StepId, Stream};
use tare_size::budget::human;

/// How events are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    Auto,
    Tty,
    Plain,
    Json,
}

/// A [`Reporter`] writing to stderr.
pub struct Printer {
    mode: ProgressMode,
    color: bool,
    start: Instant,
    /// Step start times, by step number, for log line offsets.
    started: Mutex<Vec<(usize, Instant)>>,
    out: Mutex<std::io::Stderr>,
    /// The live view of `tty` mode.
    live: Option<Live>,
}

/// How many lines of a running step's output the live view shows.
pub const LOG_LINES: usize = 5;

/// The live view: one bar per running step, keyed by step number.
struct Live {
    multi: MultiProgress,
    steps: Mutex<HashMap<usize, LiveStep>>,
}

struct LiveStep {
    bar: ProgressBar,
    header: String,
    logs: VecDeque<String>,
    transfers: HashMap<String, ProgressBar>,
}

impl Printer {
    pub fn new(mode: ProgressMode) -> Printer {
        let stderr = std::io::stderr();
        let tty = stderr.is_terminal();
        let mode = match mode {
            ProgressMode::Auto if tty => ProgressMode::Tty,
            ProgressMode::Auto => ProgressMode::Plain,
            m => m,
        };
        let color = mode == ProgressMode::Tty
            && tty
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Printer {
            mode,
            color,
            start: Instant::now(),
            started: Mutex::new(Vec::new()),
            out: Mutex::new(stderr),
            live: (mode == ProgressMode::Tty).then(Live::new),
        }
    }

    /// The number of a step started after every step so far (a push after the build).
    pub fn next_step(&self) -> usize {
        let started = self.started.lock().ok();
        started
            .and_then(|s| s.iter().map(|(n, _)| *n).max())
            .unwrap_or(0)
            + 1
    }

    /// The header of a step: `[stage 2/4] RUN make`, or the text alone outside a stage.
    fn header(step: &StepId, text: &str) -> String {
        if step.index == 0 {
            text.to_string()
        } else {
            format!("[{} {}/{}] {text}", step.stage, step.index, step.total)
        }
    }

    fn since_step(&self, step: &StepId) -> f64 {
        let started = self.started.lock().ok();
        started
            .and_then(|s| s.iter().find(|(n, _)| *n == step.number).map(|(_, t)| *t))
            .unwrap_or(self.start)
            .elapsed()
            .as_secs_f64()
    }

    fn paint(&self, text: &str, code: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn line(&self, text: &str) {
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{text}");
        }
    }

    fn plain(&self, event: &Event) -> String {
        match event {
            Event::Started { step, text } => self.paint(
                &format!("#{} {}", step.number, Printer::header(step, text)),
                "1",
            ),
            Event::Cached { step } => format!("#{} CACHED", step.number),
            Event::CacheMiss { step, reason } => {
                format!("#{} cache miss: {reason}", step.number)
            }
            Event::Log { step, line, .. } => self.paint(
                &format!("#{} {:.3} {}", step.number, self.since_step(step), line),
                "2",
            ),
            Event::Transfer {
                step,
                blob,
                done,
                total,
            } => format!(
                "#{} {blob} {} / {}{}",
                step.number,
                human(*done),
                human(*total),
                if done >= total { " done" } else { "" }
            ),
            Event::Progress { step, done, total } => match total {
                Some(t) => format!("#{} {} / {}", step.number, human(*done), human(*t)),
                None => format!("#{} {}", step.number, human(*done)),
            },
            Event::Finished {
                step,
                layer_size,
                image_size,
                seconds,
            } => {
                let layer = match layer_size {
                    Some(s) => format!("layer {}", human(*s)),
                    None => "no layer".to_string(),
                };
                format!(
                    "#{} DONE {seconds:.1}s ({layer}, image {})",
                    step.number,
                    human(*image_size)
                )
            }
            Event::Warning { message } => format!("WARNING: {message}"),
        }
    }
}

fn step_json(step: &StepId) -> serde_json::Value {
    json!({"step": step.number, "stage": step.stage, "index": step.index, "total": step.total})
}

/// One `--progress json` line: `time` (RFC 3339), `event` (`started`, `cached`,
/// `cache_miss`, `log`, `transfer`, `progress`, `finished`, `warning`), the step's `step`,
/// `stage`, `index` and `total` when the event has a step, and the event's own fields:
/// `text`; `reason`; `stream` and `line`; `blob`, `bytes` and `size`; `bytes` and `size`
/// (`null` when unknown);
/// `layer_size`, `image_size` and `seconds`; `message`.
///
/// A transfer outside the build's stages is a step with `stage` `""` and `index` 0: a FROM's
/// pull (`text` `FROM REF`), `--push` (`pushing NAME`), a `--cache-to` export (`exporting
/// cache to REF` or `DIR`) and each fetch of a `--cache-from` hit's layer (`importing cache
/// from REPOSITORY` or `DIR`). Each of its blobs is `transfer` events (`blob` the short
/// digest, first with `bytes` 0, last with `bytes` equal to `size`), what needed no transfer
/// is a `log` line (`sha256:…: mounted from REPO`), an export ends with the log line `cache
/// entries: N written, M already there`, and `finished` ends the step (`image_size`: the
/// size of the blobs it covered).
fn event_json(at: SystemTime, event: &Event) -> serde_json::Value {
    let time = chrono::DateTime::<chrono::Utc>::from(at)
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let (kind, step, mut extra) = match event {
        Event::Started { step, text } => ("started", Some(step), json!({"text": text})),
        Event::Cached { step } => ("cached", Some(step), json!({})),
        Event::CacheMiss { step, reason } => ("cache_miss", Some(step), json!({"reason": reason})),
        Event::Log { step, stream, line } => (
            "log",
            Some(step),
            json!({"stream": if *stream == Stream::Stdout { "stdout" } else { "stderr" }, "line": line}),
        ),
        Event::Transfer {
            step,
            blob,
            done,
            total,
        } => (
            "transfer",
            Some(step),
            json!({"blob": blob, "bytes": done, "size": total}),
        ),
        Event::Progress { step, done, total } => (
            "progress",
            Some(step),
            json!({"bytes": done, "size": total}),
        ),
        Event::Finished {
            step,
            layer_size,
            image_size,
            seconds,
        } => (
            "finished",
            Some(step),
            json!({"layer_size": layer_size, "image_size": image_size, "seconds": seconds}),
        ),
        Event::Warning { message } => ("warning", None, json!({"message": message})),
    };
    if let Some(obj) = extra.as_object_mut() {
        obj.insert("time".into(), json!(time));
        obj.insert("event".into(), json!(kind));
        if let Some(step) = step {
            if let Some(s) = step_json(step).as_object() {
                obj.extend(s.clone());
            }
        }
    }
    extra
}

impl Reporter for Printer {
    fn report(&self, at: SystemTime, event: Event) {
        if let Event::Started { step, .. } = &event {
            if let Ok(mut s) = self.started.lock() {
                s.push((step.number, Instant::now()));
            }
        }
        if let Some(live) = &self.live {
            return live.show(self, &event);
        }
        match self.mode {
            ProgressMode::Json => self.line(&event_json(at, &event).to_string()),
            _ => {
                // Bytes between the first and the last report are for the live view: plain
                // output names a blob when it starts and ends, and a step's total once.
                match &event {
                    Event::Transfer { done, total, .. } if *done != 0 && done < total => return,
                    Event::Progress { done, total, .. } if total.is_none_or(|t| *done < t) => {
                        return
                    }
                    _ => {}
                }
                self.line(&self.plain(&event))
            }
        }
    }
}

impl Drop for Printer {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.clear();
        }
    }
}

impl Live {
    fn new() -> Live {
        Live {
            multi: live_area(),
            steps: Mutex::new(HashMap::new()),
        }
    }

    fn step_style() -> ProgressStyle {
        ProgressStyle::with_template("{spinner} {prefix} {secs}{msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner())
            .with_key(
                "secs",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.1}s", state.elapsed().as_secs_f64());
                },
            )
            .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ ")
    }

    /// A finished line above the live area (a closed terminal is not an error here).
    fn println(&self, line: String) {
        let _ = self.multi.println(line);
    }

    fn show(&self, printer: &Printer, event: &Event) {
        let Ok(mut steps) = self.steps.lock() else {
            return;
        };
        match event {
            Event::Started { step, text } => {
                let bar = self.multi.add(ProgressBar::new_spinner());
                bar.set_style(Live::step_style());
                let header = format!("#{} {}", step.number, Printer::header(step, text));
                bar.set_prefix(header.clone());
                bar.enable_steady_tick(Duration::from_millis(100));
                steps.insert(
                    step.number,
                    LiveStep {
                        bar,
                        header,
                        logs: VecDeque::new(),
                        transfers: HashMap::new(),
                    },
                );
            }
            Event::Log { step, line, .. } => {
                if let Some(s) = steps.get_mut(&step.number) {
                    if s.logs.len() == LOG_LINES {
                        s.logs.pop_front();
                    }
                    s.logs.push_back(line.clone());
                    // The timer stays on the header line; the output goes under it.
                    let mut message = String::new();
                    for l in &s.logs {
                        message.push_str("\n  ");
                        message.push_str(&printer.paint(l, "2"));
                    }
                    s.bar.set_message(message);
                }
            }
            Event::Transfer {
                step,
                blob,
                done,
                total,
            } => {
                if let Some(s) = steps.get_mut(&step.number) {
                    let bar = s.transfers.entry(blob.clone()).or_insert_with(|| {
                        transfer_bar(&self.multi, Some(&s.bar), *total, blob.clone())
                    });
                    bar.set_position(*done);
                    if done >= total {
                        bar.finish_and_clear();
                        self.multi.remove(bar);
                        s.transfers.remove(blob);
                    }
                }
            }
            Event::Cached { step } => {
                if let Some(s) = steps.get_mut(&step.number) {
                    s.header.push_str(" CACHED");
                    s.bar.set_prefix(s.header.clone());
                }
            }
            Event::Finished { step, .. } => {
                if let Some(s) = steps.remove(&step.number) {
                    for bar in s.transfers.values() {
                        bar.finish_and_clear();
                    }
                    s.bar.finish_and_clear();
                    self.multi.remove(&s.bar);
                    let done = printer.plain(event);
                    let tail = done.split_once(" DONE ").map_or("", |(_, t)| t);
                    self.println(format!("=> {}  {tail}", printer.paint(&s.header, "1")));
                }
            }
            // Bytes of the step itself (an ADD's download): one bar under it, which ends
            // with the step.
            Event::Progress { step, done, total } => {
                if let Some(s) = steps.get_mut(&step.number) {
                    let bar = s.transfers.entry(String::new()).or_insert_with(|| {
                        let bar = transfer_bar(
                            &self.multi,
                            Some(&s.bar),
                            total.unwrap_or(0),
                            String::new(),
                        );
                        if total.is_none() {
                            bar.set_style(
                                ProgressStyle::with_template("   {bytes} {bytes_per_sec}")
                                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                            );
                        }
                        bar
                    });
                    if let Some(t) = total {
                        bar.set_length(*t);
                    }
                    bar.set_position(*done);
                }
            }
            Event::CacheMiss { .. } | Event::Warning { .. } => {
                self.println(printer.plain(event));
            }
        }
    }

    /// Takes the live area off the screen (a build that failed leaves running steps).
    fn clear(&self) {
        if let Ok(mut steps) = self.steps.lock() {
            for (_, s) in steps.drain() {
                s.bar.finish_and_clear();
            }
        }
        let _ = self.multi.clear();
    }
}

/// A live area on stderr, redrawn ten times a second.
pub fn live_area() -> MultiProgress {
    MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10))
}

/// The bar of one blob that moves (`{digest} [====>   ] 1.2 MiB / 3.4 MiB 2.0 MiB/s`), under
/// `after` or at the bottom of `live`.
pub fn transfer_bar(
    live: &MultiProgress,
    after: Option<&ProgressBar>,
    total: u64,
    label: String,
) -> ProgressBar {
    let bar = ProgressBar::new(total);
    let bar = match after {
        Some(step) => live.insert_after(step, bar),
        None => live.add(bar),
    };
    bar.set_style(
        ProgressStyle::with_template("   {msg} [{bar:30}] {bytes} / {total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(label);
    bar
}
