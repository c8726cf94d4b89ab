//! Renders build events on stderr: `--progress auto|tty|plain|json`.
//!
//! - `plain`: one line per event, prefixed with the step number like BuildKit's plain output
//!   (`#3 [builder 2/4] RUN make`, `#3 CACHED`, `#3 0.412 log line`, `#3 DONE 0.5s`); stable,
//!   for CI and tests.
//! - `json`: one JSON object per event and line, with an RFC 3339 timestamp.
//! - `tty`: the plain lines, with step headers in bold and logs dimmed (`NO_COLOR` turns the
//!   colours off); `auto` picks it on a terminal and `plain` otherwise.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Instant, SystemTime};

use serde_json::json;
use tare_build::{Event, Reporter, StepId, Stream};

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
                &format!(
                    "#{} [{} {}/{}] {}",
                    step.number, step.stage, step.index, step.total, text
                ),
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
        Event::Progress { step, done, total } => (
            "progress",
            Some(step),
            json!({"done": done, "total": total}),
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
        match self.mode {
            ProgressMode::Json => self.line(&event_json(at, &event).to_string()),
            _ => self.line(&self.plain(&event)),
        }
    }
}

/// Sizes as docker prints them (`1.5MB`, decimal units).
pub fn human(bytes: u64) -> String {
    crate::cmd::images::human_size(bytes)
}
