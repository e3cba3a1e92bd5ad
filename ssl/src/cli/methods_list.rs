//! `tessera methods`: the registry as a table.

use crate::methods;

/// `tessera methods`: one line per registered method.
pub fn methods_table() -> String {
    let mut out = String::new();
    for m in methods::METHODS {
        let presets: Vec<String> = m.presets.iter().map(|p| format!("configs/{} ({})", p.file, p.datasets.join(", "))).collect();
        out.push_str(&format!("{:<8} {:<22} {:<14} {}  — {}\n", m.name, m.family.name(), m.default_encoder, presets.join(", "), m.paper));
    }
    out
}
