//! The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched)
//! with a bar chart of the layer sizes and the running image size, a treemap of the largest
//! directories, and the wasted-files table.

use std::fmt::Write as _;

use crate::budget::human;
use crate::imagediff::{signed_size as signed, Change, ImageDiff};
use crate::steps::short_command;
use crate::waste::{Analysis, DirNode};

/// How many wasted files the table lists.
const TABLE_ROWS: usize = 200;

/// Renders the report. `title` names the image (its reference or ID).
pub fn render(analysis: &Analysis, title: &str) -> String {
    let mut h = String::with_capacity(64 << 10);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>tare analyze: {t}</title>\n<style>{CSS}</style></head><body>\n\
         <h1>{t}</h1>\n<p class=\"summary\">Image size <b>{size}</b> in {layers} layers · \
         wasted <b class=\"bad\">{wasted}</b> ({meta} of it metadata-only rewrites) · \
         efficiency <b>{eff:.1}%</b> · final files {content}</p>\n",
        t = esc(title),
        size = human(analysis.image_size),
        layers = analysis.layers.len(),
        wasted = human(analysis.wasted_bytes),
        meta = human(analysis.metadata_only_bytes),
        eff = analysis.efficiency * 100.0,
        content = human(analysis.content_bytes),
    );
    h.push_str("<h2>Layers</h2>\n");
    layer_chart(&mut h, analysis);
    h.push_str("<h2>Largest directories</h2>\n");
    treemap(&mut h, &analysis.tree);
    h.push_str("<h2>Wasted files</h2>\n");
    wasted_table(&mut h, analysis);
    h.push_str("</body></html>\n");
    h
}

pub(crate) const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d2430;background:#fbfbfd}\
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}\
.summary{margin:0 0 8px}.bad{color:#c0392b}\
svg{background:#fff;border:1px solid #d8dce3;border-radius:4px}\
svg text{font:11px system-ui,sans-serif;fill:#1d2430}\
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #d8dce3;padding:3px 8px;text-align:left}\
th{background:#eef1f6}td.n{text-align:right;font-variant-numeric:tabular-nums}\
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}";

pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn layer_label(l: &crate::waste::LayerReport) -> String {
    let cmd = l
        .created_by
        .as_deref()
        .map(short_command)
        .unwrap_or_default();
    match l.line {
        Some(line) => format!("#{} line {line}: {cmd}", l.index),
        None => format!("#{} {cmd}", l.index),
    }
}

/// Bars: each layer's size (the part a later layer kills in red), and the running image size
/// as a line on its own scale.
fn layer_chart(h: &mut String, a: &Analysis) {
    let n = a.layers.len().max(1);
    let (w, ht, left, bottom, top) = (1100.0_f64, 320.0_f64, 70.0, 40.0, 16.0);
    let plot_w = w - left - 20.0;
    let plot_h = ht - bottom - top;
    let max_layer = a.layers.iter().map(|l| l.size).max().unwrap_or(0).max(1) as f64;
    let total = a.image_size.max(1) as f64;
    let slot = plot_w / n as f64;
    let bar = (slot * 0.7).max(1.0);
    let _ = write!(
        h,
        "<p class=\"legend\"><span style=\"background:#4a78c2\"></span>layer size\
         <span style=\"background:#d9534f\"></span>bytes a later layer kills\
         <span style=\"background:#f0a030\"></span>running image size (right scale)</p>\n\
         <svg width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\">\n"
    );
    // Axes and scale labels.
    let _ = write!(
        h,
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{y0}\" stroke=\"#888\"/>\
         <line x1=\"{left}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#888\"/>\
         <text x=\"4\" y=\"{ty}\">{maxl}</text><text x=\"4\" y=\"{y0}\">0</text>\
         <text x=\"{tx}\" y=\"{ty}\" text-anchor=\"end\">{tot}</text>",
        y0 = top + plot_h,
        x1 = left + plot_w,
        ty = top + 10.0,
        tx = left + plot_w - 2.0,
        maxl = esc(&human(max_layer as u64)),
        tot = esc(&human(total as u64)),
    );
    let mut points = String::new();
    for (i, l) in a.layers.iter().enumerate() {
        let x = left + slot * i as f64 + (slot - bar) / 2.0;
        let bh = l.size as f64 / max_layer * plot_h;
        let killed_h = (l.wasted_bytes.min(l.size) as f64 / max_layer * plot_h).min(bh);
        let y = top + plot_h - bh;
        let label = esc(&layer_label(l));
        let _ = write!(
            h,
            "<g><title>{label}\n{size} ({wasted} killed later)</title>\
             <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{bh:.1}\" fill=\"#4a78c2\"/>\
             <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{bar:.1}\" height=\"{killed_h:.1}\" fill=\"#d9534f\"/></g>\n",
            size = human(l.size),
            wasted = human(l.wasted_bytes),
        );
        let tick = match l.line {
            Some(line) => format!("L{line}"),
            None => format!("#{i}"),
        };
        if n <= 40 || i % (n / 40 + 1) == 0 {
            let _ = writeln!(
                h,
                "<text x=\"{cx:.1}\" y=\"{ty:.1}\" text-anchor=\"middle\">{tick}</text>",
                cx = x + bar / 2.0,
                ty = top + plot_h + 14.0,
            );
        }
        let py = top + plot_h - l.running_size as f64 / total * plot_h;
        let _ = write!(points, "{:.1},{py:.1} ", x + bar / 2.0);
    }
    let _ = write!(
        h,
        "<polyline points=\"{points}\" fill=\"none\" stroke=\"#f0a030\" stroke-width=\"3\"/>\n</svg>\n"
    );
    h.push_str("<table><tr><th>#</th><th>line</th><th>step</th><th>size</th><th>running</th><th>killed later</th></tr>\n");
    for l in &a.layers {
        let _ =
            writeln!(
            h,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            l.index,
            l.line.map(|n| n.to_string()).unwrap_or_default(),
            esc(&l.created_by.as_deref().map(short_command).unwrap_or_default()),
            human(l.size),
            human(l.running_size),
            human(l.wasted_bytes),
        );
    }
    h.push_str("</table>\n");
}

/// A rectangle: x, y, width, height.
type Rect = (f64, f64, f64, f64);

/// Squarified treemap layout (Bruls, Huizing, van Wijk) of positive `values` in `r`.
fn squarify(values: &[f64], r: Rect) -> Vec<Rect> {
    let total: f64 = values.iter().sum();
    let (mut x, mut y, mut w, mut h) = r;
    if total <= 0.0 || w <= 0.0 || h <= 0.0 {
        return vec![(x, y, 0.0, 0.0); values.len()];
    }
    let areas: Vec<f64> = values.iter().map(|v| v / total * w * h).collect();
    let worst = |row: &[f64], side: f64| {
        let sum: f64 = row.iter().sum();
        let max = row.iter().cloned().fold(0.0, f64::max);
        let min = row.iter().cloned().fold(f64::INFINITY, f64::min);
        if sum <= 0.0 || min <= 0.0 {
            return f64::INFINITY;
        }
        (max * side * side / (sum * sum)).max(sum * sum / (side * side * min))
    };
    let mut out = Vec::with_capacity(values.len());
    let mut i = 0;
    while i < areas.len() {
        let side = w.min(h);
        let mut j = i + 1;
        while j < areas.len() && worst(&areas[i..=j], side) <= worst(&areas[i..j], side) {
            j += 1;
        }
        let row = &areas[i..j];
        let sum: f64 = row.iter().sum();
        if w >= h {
            let cw = if h > 0.0 { sum / h } else { 0.0 };
            let mut yy = y;
            for a in row {
                let rh = if cw > 0.0 { a / cw } else { 0.0 };
                out.push((x, yy, cw, rh));
                yy += rh;
            }
            x += cw;
            w -= cw;
        } else {
            let rh = if w > 0.0 { sum / w } else { 0.0 };
            let mut xx = x;
            for a in row {
                let rw = if rh > 0.0 { a / rh } else { 0.0 };
                out.push((xx, y, rw, rh));
                xx += rw;
            }
            y += rh;
            h -= rh;
        }
        i = j;
    }
    out
}

fn treemap(h: &mut String, root: &DirNode) {
    let (w, ht) = (1100.0, 420.0);
    let _ = writeln!(
        h,
        "<svg width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\">"
    );
    if root.size == 0 || root.children.is_empty() {
        h.push_str("<text x=\"20\" y=\"30\">no files</text></svg>\n");
        return;
    }
    let values: Vec<f64> = root.children.iter().map(|c| c.size as f64).collect();
    let rects = squarify(&values, (0.0, 0.0, w, ht));
    for (k, (child, r)) in root.children.iter().zip(rects).enumerate() {
        let hue = (k * 47 + 200) % 360;
        node(h, child, &format!("/{}", child.name), r, hue, 0);
    }
    h.push_str("</svg>\n");
}

fn node(h: &mut String, n: &DirNode, path: &str, r: Rect, hue: usize, depth: usize) {
    let (x, y, w, ht) = r;
    if w < 1.0 || ht < 1.0 {
        return;
    }
    let light = 42 + depth * 12;
    let _ = writeln!(
        h,
        "<g><title>{p}  {s}</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{ht:.1}\" \
         fill=\"hsl({hue},55%,{light}%)\" stroke=\"#fff\" stroke-width=\"{sw}\"/></g>",
        p = esc(path),
        s = human(n.size),
        sw = if depth == 0 { 2 } else { 1 },
    );
    let pad_top = if depth < 2 && ht > 30.0 { 16.0 } else { 0.0 };
    if w > 60.0 && ht > 14.0 {
        let _ = writeln!(
            h,
            "<text x=\"{tx:.1}\" y=\"{ty:.1}\" style=\"fill:#fff\">{name} {s}</text>",
            tx = x + 4.0,
            ty = y + 12.0,
            name = esc(if depth == 0 { path } else { &n.name }),
            s = human(n.size),
        );
    }
    if depth < 2 && !n.children.is_empty() && w > 20.0 && ht > pad_top + 10.0 {
        let inner = (x + 2.0, y + pad_top, w - 4.0, ht - pad_top - 2.0);
        let child_total: u64 = n.children.iter().map(|c| c.size).sum();
        // Files directly in this directory take the rest of its area.
        let mut values: Vec<f64> = n.children.iter().map(|c| c.size as f64).collect();
        let own = n.size.saturating_sub(child_total);
        if own > 0 {
            values.push(own as f64);
        }
        let rects = squarify(&values, inner);
        for (c, r) in n.children.iter().zip(rects) {
            node(h, c, &format!("{path}/{}", c.name), r, hue, depth + 1);
        }
    }
}

fn wasted_table(h: &mut String, a: &Analysis) {
    if a.wasted.is_empty() {
        h.push_str(
            "<p>No wasted files: every byte the layers hold is in the final filesystem.</p>\n",
        );
        return;
    }
    h.push_str(
        "<table><tr><th>path</th><th>size</th><th>kind</th><th>added by</th><th>removed by</th></tr>\n",
    );
    let step = |layer: usize, line: Option<usize>, by: &Option<String>| {
        let cmd = by.as_deref().map(short_command).unwrap_or_default();
        match line {
            Some(l) => esc(&format!("line {l}: {cmd}")),
            None => esc(&format!("layer {layer}: {cmd}")),
        }
    };
    for w in a.wasted.iter().take(TABLE_ROWS) {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&w.path),
            human(w.size),
            w.kind.verb(),
            step(w.added_layer, w.added_line, &w.added_by),
            step(w.removed_layer, w.removed_line, &w.removed_by),
        );
    }
    h.push_str("</table>\n");
    if a.wasted.len() > TABLE_ROWS {
        let _ = writeln!(
            h,
            "<p>… and {} more (see <code>tare analyze --format json</code>).</p>",
            a.wasted.len() - TABLE_ROWS
        );
    }
}

/// How many changed files the diff page lists and charts.
const DIFF_ROWS: usize = 500;
const DIFF_BARS: usize = 25;

/// The `tare diff --html` page: the same look as the analyze report. A summary of the size
/// and compressed deltas, a bar chart of the largest file deltas (growth red, shrinkage
/// green), then the files, layers and config tables.
pub fn render_diff(d: &ImageDiff, name_a: &str, name_b: &str) -> String {
    let mut h = String::with_capacity(64 << 10);
    let count = |c: Change| d.files.iter().filter(|f| f.change == c).count();
    let class = |delta: i64| if delta > 0 { "bad" } else { "good" };
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>tare diff: {a} → {b}</title>\n<style>{CSS}.good{{color:#2e8b57}}</style></head><body>\n\
         <h1>{a} → {b}</h1>\n<p class=\"summary\" id=\"size\">Files <b>{sa}</b> → <b>{sb}</b> \
         (<b class=\"{cs}\">{ds}</b>) · compressed <b>{wa}</b> → <b>{wb}</b> \
         (<b class=\"{cw}\">{dw}</b>) · {added} added, {removed} removed, {changed} changed · \
         {config} config fields differ</p>\n",
        a = esc(name_a),
        b = esc(name_b),
        sa = human(d.size_a),
        sb = human(d.size_b),
        cs = class(d.size_delta()),
        ds = signed(d.size_delta()),
        wa = human(d.wire_a),
        wb = human(d.wire_b),
        cw = class(d.wire_delta()),
        dw = signed(d.wire_delta()),
        added = count(Change::Added),
        removed = count(Change::Removed),
        changed = count(Change::Changed),
        config = d.config.len(),
    );
    h.push_str("<h2>Largest changes</h2>\n");
    delta_chart(&mut h, d);
    h.push_str("<h2>Files</h2>\n");
    if d.files.is_empty() {
        h.push_str("<p>No file differs.</p>\n");
    } else {
        h.push_str(
            "<table id=\"files\"><tr><th>path</th><th>change</th><th>delta</th><th>layer</th>\
             <th>made by</th></tr>\n",
        );
        for f in d.files.iter().take(DIFF_ROWS) {
            let change = match f.change {
                Change::Added => "added".to_string(),
                Change::Removed => "removed".to_string(),
                Change::Changed => format!("changed ({})", f.what.join(", ")),
            };
            let _ = writeln!(
                h,
                "<tr><td>/{}</td><td>{}</td><td class=\"n {}\">{}</td><td class=\"n\">{}</td>\
                 <td>{}</td></tr>",
                esc(&f.path),
                change,
                class(f.delta),
                signed(f.delta),
                f.layer,
                esc(&f.step),
            );
        }
        h.push_str("</table>\n");
        if d.files.len() > DIFF_ROWS {
            let _ = writeln!(
                h,
                "<p>… and {} more (see <code>tare diff --format json</code>).</p>",
                d.files.len() - DIFF_ROWS
            );
        }
    }
    h.push_str(
        "<h2>Layers</h2>\n<table id=\"layers\"><tr><th>#</th><th>verdict</th><th>A</th><th>B</th></tr>\n",
    );
    for l in &d.layers {
        let short = |x: &Option<String>| {
            esc(&x
                .as_deref()
                .map(|s| s.chars().take(19).collect::<String>())
                .unwrap_or_default())
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
            l.index,
            l.verdict,
            short(&l.a),
            short(&l.b),
        );
    }
    h.push_str("</table>\n<h2>Config</h2>\n");
    if d.config.is_empty() {
        h.push_str("<p>The configs are the same.</p>\n");
    } else {
        h.push_str("<table id=\"config\"><tr><th>field</th><th>A</th><th>B</th></tr>\n");
        for c in &d.config {
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td><code>{}</code></td><td><code>{}</code></td></tr>",
                esc(&c.field),
                esc(&c.a.to_string()),
                esc(&c.b.to_string()),
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str("</body></html>\n");
    h
}

/// Horizontal bars of the largest file deltas around a zero line.
fn delta_chart(h: &mut String, d: &ImageDiff) {
    let files: Vec<_> = d
        .files
        .iter()
        .filter(|f| f.delta != 0)
        .take(DIFF_BARS)
        .collect();
    if files.is_empty() {
        h.push_str("<p>No file changed size.</p>\n");
        return;
    }
    let (w, row, label_w) = (1100.0_f64, 18.0_f64, 420.0_f64);
    let ht = row * files.len() as f64 + 10.0;
    let max = files
        .iter()
        .map(|f| f.delta.unsigned_abs())
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let half = (w - label_w - 20.0) / 2.0;
    let zero = label_w + half;
    let _ = writeln!(
        h,
        "<p class=\"legend\"><span style=\"background:#d9534f\"></span>grew\
         <span style=\"background:#5cb85c\"></span>shrank or removed</p>\n\
         <svg width=\"{w}\" height=\"{ht}\" viewBox=\"0 0 {w} {ht}\" role=\"img\">\
         <line x1=\"{zero}\" y1=\"0\" x2=\"{zero}\" y2=\"{ht}\" stroke=\"#888\"/>"
    );
    for (i, f) in files.iter().enumerate() {
        let y = 5.0 + row * i as f64;
        let len = f.delta.unsigned_abs() as f64 / max * half;
        let (x, fill) = if f.delta > 0 {
            (zero, "#d9534f")
        } else {
            (zero - len, "#5cb85c")
        };
        let mut name: String = f
            .path
            .chars()
            .rev()
            .take(60)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        if name.len() < f.path.len() {
            name.insert(0, '…');
        } else {
            name.insert(0, '/');
        }
        let _ = writeln!(
            h,
            "<g><title>/{p} {ds} ({step})</title><text x=\"4\" y=\"{ty:.1}\">{n} {ds}</text>\
             <rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{len:.1}\" height=\"{bh:.1}\" fill=\"{fill}\"/></g>",
            p = esc(&f.path),
            ds = signed(f.delta),
            step = esc(&f.step),
            ty = y + 12.0,
            n = esc(&name),
            bh = row - 4.0,
        );
    }
    h.push_str("</svg>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squarify_fills_the_rectangle_exactly() {
        let rects = squarify(&[6.0, 6.0, 4.0, 3.0, 2.0, 2.0, 1.0], (0.0, 0.0, 6.0, 4.0));
        let area: f64 = rects.iter().map(|r| r.2 * r.3).sum();
        assert!((area - 24.0).abs() < 1e-9);
        assert!((rects[0].2 * rects[0].3 - 6.0).abs() < 1e-9);
        for r in rects {
            assert!(
                r.0 >= -1e-9 && r.1 >= -1e-9 && r.0 + r.2 <= 6.0 + 1e-9 && r.1 + r.3 <= 4.0 + 1e-9
            );
        }
    }

    #[test]
    fn page_is_self_contained_and_escaped() {
        let a = crate::waste::analyze_indexes(&[], &[]);
        let page = render(&a, "<img>");
        assert!(page.contains("&lt;img&gt;"));
        assert!(
            !page.contains("http://") && !page.contains("https://") && !page.contains("<script")
        );
    }

    #[test]
    fn diff_page_escapes_paths_and_config_values() {
        let d = ImageDiff {
            a: "a".into(),
            b: "b".into(),
            files: vec![crate::imagediff::FileChange {
                path: "<b>x".into(),
                change: Change::Added,
                what: Vec::new(),
                delta: 5,
                layer: 1,
                line: Some(2),
                step: "line 2 (RUN echo <x>)".into(),
            }],
            config: vec![crate::imagediff::ConfigChange {
                field: "config.Env[0]".into(),
                a: serde_json::json!("A=<s>"),
                b: serde_json::json!("A=2"),
            }],
            layers: Vec::new(),
            size_a: 1,
            size_b: 6,
            wire_a: 0,
            wire_b: 0,
        };
        let page = render_diff(&d, "a<1>", "b");
        assert!(page.contains("/&lt;b&gt;x") && page.contains("A=&lt;s&gt;"));
        assert!(!page.contains("<b>x") && !page.contains("<s>") && !page.contains("<1>"));
        assert!(page.contains("+5B"));
    }
}
