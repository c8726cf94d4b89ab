//! Which step made each layer: the history entry's `created_by`, and the Dockerfile line when
//! the builder recorded one in the image's `build_info`.

use serde::Serialize;
use tare_store::Image;

/// The step behind one layer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Step {
    /// The history entry's `created_by` (`RUN /bin/sh -c rm /bigfile`), when there is one.
    pub created_by: Option<String>,
    /// 1-based Dockerfile line of the instruction, when tare built the image.
    pub line: Option<usize>,
}

impl Step {
    /// A short label: `line 3 (RUN rm /bigfile)`, or the command alone, or `layer N`.
    pub fn label(&self, layer: usize) -> String {
        let cmd = self.created_by.as_deref().map(short_command);
        match (self.line, cmd) {
            (Some(line), Some(cmd)) => format!("line {line} ({cmd})"),
            (Some(line), None) => format!("line {line}"),
            (None, Some(cmd)) if !cmd.is_empty() => format!("layer {layer} ({cmd})"),
            _ => format!("layer {layer}"),
        }
    }
}

/// `/bin/sh -c #(nop) ` and `|2 A=b /bin/sh -c ` prefixes removed, cut to 60 characters.
pub fn short_command(created_by: &str) -> String {
    let mut s = created_by.trim();
    // BuildKit's form: `RUN /bin/sh -c make # buildkit`.
    if let Some(rest) = s.strip_suffix("# buildkit") {
        s = rest.trim_end();
        if let Some(cmd) = s.strip_prefix("RUN /bin/sh -c ") {
            return cut(&format!("RUN {}", cmd.trim()), 60);
        }
    }
    if let Some(rest) = s.strip_prefix('|') {
        // Docker's `|N ARG=v ... cmd` form: skip the count and the N build args.
        let mut words = rest.splitn(2, ' ');
        let n: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
        let mut tail = words.next().unwrap_or("");
        for _ in 0..n {
            tail = tail.split_once(' ').map(|(_, t)| t).unwrap_or("");
        }
        s = tail;
    }
    for prefix in ["/bin/sh -c #(nop) ", "/bin/sh -c ", "#(nop) "] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
            if !s.starts_with(char::is_uppercase) && prefix == "/bin/sh -c " {
                return cut(&format!("RUN {}", s.trim()), 60);
            }
        }
    }
    cut(s.trim(), 60)
}

fn cut(s: &str, max: usize) -> String {
    let one_line: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut t: String = one_line.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// The Dockerfile the image was built from, as recorded by the builder.
pub fn dockerfile(image: &Image) -> Option<String> {
    image.build_info.as_ref()?.dockerfile.clone()
}

/// The number of layers the image shares with the base it was built from, when known.
pub fn base_layers(image: &Image) -> Option<usize> {
    image.build_info.as_ref()?.base_layers
}

/// One [`Step`] per layer, bottom first. History entries with `empty_layer` are skipped; the
/// Dockerfile lines come from `build_info` (see [`history_lines`]).
pub fn layer_steps(image: &Image) -> Vec<Step> {
    let lines = history_lines(image);
    let history = &image.config.history;
    let mut steps = Vec::with_capacity(image.layers.len());
    let non_empty = history.iter().filter(|h| !h.empty_layer).count();
    if non_empty == image.layers.len() {
        for (i, h) in history.iter().enumerate() {
            if h.empty_layer {
                continue;
            }
            steps.push(Step {
                created_by: h.created_by.clone(),
                line: lines.get(i).copied().flatten(),
            });
        }
    } else {
        // A history that does not match the layers (some importers write none): the layers
        // stay anonymous rather than being attributed to the wrong step.
        steps.resize(image.layers.len(), Step::default());
    }
    steps
}

/// The Dockerfile line of each history entry (same length as the history, `None` where
/// unknown), from the builder's `build_info`.
pub fn history_lines(image: &Image) -> Vec<Option<usize>> {
    let n = image.config.history.len();
    match &image.build_info {
        Some(info) => info.history_lines(n),
        None => vec![None; n],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_command_strips_docker_shell_prefixes() {
        assert_eq!(
            short_command("/bin/sh -c #(nop)  CMD [\"sh\"]"),
            "CMD [\"sh\"]"
        );
        assert_eq!(short_command("/bin/sh -c rm /bigfile"), "RUN rm /bigfile");
        assert_eq!(
            short_command("RUN /bin/sh -c rm /x # buildkit"),
            "RUN rm /x"
        );
        assert_eq!(short_command("COPY a b # buildkit"), "COPY a b");
        assert_eq!(short_command("|1 A=b /bin/sh -c make"), "RUN make");
    }
}
