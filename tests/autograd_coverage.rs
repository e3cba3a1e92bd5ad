//! Guards the op list: every differentiable op the autograd crate records must have a
//! property gradcheck in `autograd_ops.rs`, and every op the source records must be listed.
//! Ops recorded in `ssl` (layers' own ops) and every loss a method defines must have one in
//! `ssl_gradcheck.rs`.

use std::collections::BTreeSet;
use std::path::Path;
use tessera::autograd::DIFFERENTIABLE_OPS;
use tessera::engine::{BinaryOp, UnaryOp};

fn read_tree(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            read_tree(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&p).unwrap());
        }
    }
}

/// Every string literal that follows `pattern` in `text`.
fn names_after(text: &str, pattern: &str, end: char) -> BTreeSet<String> {
    text.match_indices(pattern).map(|(i, _)| text[i + pattern.len()..].split(end).next().unwrap().to_string()).collect()
}

#[test]
fn every_differentiable_op_has_a_gradcheck() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = std::fs::read_to_string(root.join("tests/autograd_ops.rs")).unwrap();
    let mut checked = names_after(&tests, "grad_check!(grad_", ',');
    checked.extend(names_after(&tests, "unary_check!(grad_", ','));
    let missing: Vec<&&str> = DIFFERENTIABLE_OPS.iter().filter(|op| !checked.contains(**op)).collect();
    assert!(missing.is_empty(), "ops without a property gradcheck in tests/autograd_ops.rs: {missing:?}");
}

#[test]
fn every_recorded_op_is_listed() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut src = String::new();
    read_tree(&root.join("autograd/src"), &mut src);
    let listed: BTreeSet<&str> = DIFFERENTIABLE_OPS.iter().copied().collect();
    let mut recorded = names_after(&src, "Var::from_op(\"", '"');
    recorded.extend(names_after(&src, "view_with_scatter(\"", '"'));
    // Elementwise ops record their engine names.
    recorded.extend(UnaryOp::ALL.iter().filter(|u| u.is_differentiable()).map(|u| u.name().to_string()));
    let binary = [BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Pow, BinaryOp::Maximum, BinaryOp::Minimum];
    recorded.extend(binary.iter().map(|b| b.name().to_string()));
    recorded.extend(["sum", "mean", "max", "min", "var", "logsumexp"].map(String::from));
    let unlisted: Vec<&String> = recorded.iter().filter(|r| !listed.contains(r.as_str())).collect();
    assert!(unlisted.is_empty(), "ops recorded in autograd/src but missing from DIFFERENTIABLE_OPS: {unlisted:?}");
}

#[test]
fn every_ssl_op_and_loss_has_a_gradcheck() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tests = std::fs::read_to_string(root.join("tests/ssl_gradcheck.rs")).unwrap();
    let checked = names_after(&tests, "grad_check!(grad_", ',');
    let mut src = String::new();
    read_tree(&root.join("ssl/src"), &mut src);
    let mut needed = names_after(&src, "Var::from_op(\"", '"');
    needed.extend(tessera::ssl::methods::LOSSES.iter().map(|s| s.to_string()));
    let missing: Vec<&String> = needed.iter().filter(|op| !checked.contains(*op)).collect();
    assert!(missing.is_empty(), "ssl ops or losses without a property gradcheck in tests/ssl_gradcheck.rs: {missing:?}");
    // Every public loss function of `methods` is listed in LOSSES.
    let methods_src = {
        let mut s = String::new();
        read_tree(&root.join("ssl/src/methods"), &mut s);
        s
    };
    for name in names_after(&methods_src, "pub fn ", '(') {
        if name.ends_with("loss") || name.ends_with("infonce") || name == "nt_xent" {
            assert!(tessera::ssl::methods::LOSSES.contains(&name.as_str()), "loss {name} is missing from methods::LOSSES");
        }
    }
}
