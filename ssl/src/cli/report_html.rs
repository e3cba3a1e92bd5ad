//! The HTML of `tessera report`: one column per run, every picture inlined as a base64 PNG.

use super::report::RunSummary;
use serde_json::Value;

/// Epoch-table columns first in this order (when a run logs them); the method's own keys
/// follow, sorted.
const EPOCH_COLUMNS: [&str; 12] = [
    "epoch",
    "loss",
    "seconds",
    "online_probe_acc",
    "knn_acc_epoch",
    "rankme",
    "uniformity",
    "alignment",
    "collapse_std",
    "uniform_std",
    "dead_dims",
    "diagnostics_seconds",
];
/// Epoch-record keys the table leaves out (bookkeeping, not measurements).
const HIDDEN: [&str; 5] = ["step", "lr", "images_per_second", "partial", "online_probe_train_acc"];
/// Rows of the final evaluation: the features and the key prefix of their scores.
const FINAL_ROWS: [(&str, &str); 3] = [("trained encoder", ""), ("random weights", "random_"), ("raw pixels", "pixels_")];

const STYLE: &str = "body{font-family:sans-serif;margin:1em}.runs{display:grid;gap:1.5em}\
section{min-width:0}table{border-collapse:collapse;font-size:0.85em;margin-bottom:1em}\
td,th{border:1px solid #bbb;padding:2px 6px;text-align:right}th{background:#eee}\
.scroll{overflow-x:auto}img{max-width:100%}figure{margin:0 0 1em 0}pre{background:#f6f6f6;padding:0.5em;overflow-x:auto}";

/// The whole page.
pub fn render(runs: &[RunSummary]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>tessera report</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>tessera report</h1>\n<div class=\"runs\" style=\"grid-template-columns:repeat({},minmax(0,1fr))\">\n",
        runs.len()
    );
    for run in runs {
        html.push_str(&section(run));
    }
    html.push_str("</div>\n</body>\n</html>\n");
    html
}

/// One run's column.
fn section(run: &RunSummary) -> String {
    let mut s = format!("<section class=\"run\">\n<h2>{}</h2>\n", escape(&run.dir.display().to_string()));
    s.push_str("<h3>Final evaluation</h3>\n");
    s.push_str(&match &run.final_eval {
        Some(f) => final_table(f),
        None => "<p>not evaluated (the run was stopped early or used --no-eval)</p>\n".into(),
    });
    s.push_str("<h3>Diagnostics per epoch</h3>\n");
    s.push_str(&epoch_table(&run.epochs));
    s.push_str("<h3>Pictures</h3>\n");
    for (caption, png) in &run.pictures {
        s.push_str(&format!(
            "<figure><img src=\"data:image/png;base64,{}\" alt=\"{c}\"><figcaption>{c}</figcaption></figure>\n",
            base64::encode(png),
            c = escape(caption)
        ));
    }
    s.push_str(&format!("<h3>Configuration</h3>\n<pre>{}</pre>\n</section>\n", escape(&run.config)));
    s
}

/// kNN and linear accuracy of the trained encoder against the baselines.
fn final_table(f: &Value) -> String {
    let k = f.get("knn_k").map_or(String::new(), |k| format!(" (k={k})"));
    let mut s = format!("<table><tr><th>features</th><th>kNN acc{k}</th><th>kNN weighted</th><th>linear acc</th></tr>\n");
    for (name, prefix) in FINAL_ROWS {
        let cells: Vec<String> =
            ["knn_acc", "knn_weighted_acc", "linear_acc"].iter().map(|key| cell(f.get(format!("{prefix}{key}")))).collect();
        if cells.iter().any(|c| c != "<td></td>") {
            s.push_str(&format!("<tr><th>{name}</th>{}</tr>\n", cells.concat()));
        }
    }
    s.push_str("</table>\n");
    if let Some(z) = f.get("zero_shot_acc").and_then(Value::as_f64) {
        s.push_str(&format!("<p>zero-shot accuracy {z:.3}</p>\n"));
    }
    s
}

/// One row per epoch, one column per logged measurement.
fn epoch_table(epochs: &[Value]) -> String {
    let present = |key: &str| epochs.iter().any(|r| r.get(key).is_some_and(Value::is_number));
    let mut columns: Vec<String> = EPOCH_COLUMNS.iter().filter(|k| present(k)).map(|k| k.to_string()).collect();
    let mut own: Vec<String> = epochs
        .iter()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys().cloned())
        .filter(|k| !EPOCH_COLUMNS.contains(&k.as_str()) && !HIDDEN.contains(&k.as_str()) && present(k))
        .collect();
    own.sort();
    own.dedup();
    columns.extend(own);
    let head: String = columns.iter().map(|c| format!("<th>{}</th>", escape(c))).collect();
    let mut s = format!("<div class=\"scroll\"><table><tr>{head}</tr>\n");
    for r in epochs {
        let row: String = columns.iter().map(|c| cell(r.get(c))).collect();
        s.push_str(&format!("<tr>{row}</tr>\n"));
    }
    s.push_str("</table></div>\n");
    s
}

/// A number to four significant decimals (integers as they are), or an empty cell.
fn cell(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) if n.is_u64() || n.is_i64() => format!("<td>{n}</td>"),
        Some(Value::Number(n)) => format!("<td>{:.4}</td>", n.as_f64().unwrap_or(f64::NAN)),
        _ => "<td></td>".into(),
    }
}

/// Text made safe inside HTML elements and attributes.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}
