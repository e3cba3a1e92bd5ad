//! The reverse pass: topological order from the output, then one loop that hands each
//! node's gradient to its op's rule and accumulates the results into the inputs.

use crate::var::{Edge, Var};
use crate::{Error, Result};
use std::collections::HashMap;
use tessera_engine::Tensor;

/// Nodes reachable from `root` through recorded ops, inputs before their users.
fn topological_order(root: &Var) -> Result<Vec<Var>> {
    let mut order = Vec::new();
    let mut state: HashMap<usize, bool> = HashMap::new(); // false: on the stack, true: done
                                                          // Iterative DFS: deep graphs (long sequences of ops) must not overflow the stack.
    let mut stack: Vec<(Var, usize)> = vec![(root.clone(), 0)];
    state.insert(root.id(), false);
    while let Some((node, next_child)) = stack.pop() {
        let child = {
            let op = node.0.op.borrow();
            if op.is_none() && node.0.freed.get() {
                return Err(Error::GraphFreed);
            }
            op.as_ref().and_then(|r| r.inputs.get(next_child).map(Edge::var))
        };
        match child {
            Some(c) => {
                stack.push((node, next_child + 1));
                if c.requires_grad() && !state.contains_key(&c.id()) {
                    state.insert(c.id(), false);
                    stack.push((c, 0));
                }
            }
            None => {
                state.insert(node.id(), true);
                order.push(node);
            }
        }
    }
    Ok(order)
}

fn accumulate(slot: &mut Option<Tensor>, g: Tensor) -> tessera_engine::Result<()> {
    *slot = Some(match slot.take() {
        Some(prev) => prev.add(&g)?,
        None => g,
    });
    Ok(())
}

/// Runs the reverse pass from `root` seeded with `grad`. Leaves accumulate their gradients.
/// Unless `retain_graph`, every op's saved tensors are freed as the pass leaves it.
pub(crate) fn backward(root: &Var, grad: Tensor, retain_graph: bool) -> Result<()> {
    if !root.requires_grad() {
        return Err(Error::NoGradient);
    }
    let mut order = topological_order(root)?;
    let mut grads: HashMap<usize, Tensor> = HashMap::new();
    grads.insert(root.id(), grad);
    // Consumers before producers. Each node leaves `order` as it is processed: once its
    // consumers' records are gone too, nothing but the caller can hold its value, so an
    // intermediate the caller dropped is freed here and not at the end of the pass.
    while let Some(node) = order.pop() {
        let Some(g) = grads.remove(&node.id()) else { continue };
        let rec = if retain_graph { None } else { node.0.op.borrow_mut().take() };
        let op_ref = node.0.op.borrow();
        let rec_ref = rec.as_ref().or(op_ref.as_ref());
        let Some(r) = rec_ref else {
            // A leaf: gradients accumulate across backward calls.
            accumulate(&mut node.0.grad.borrow_mut(), g)?;
            continue;
        };
        let needs: Vec<bool> = r.inputs.iter().map(|v| v.requires_grad()).collect();
        let input_grads = (r.backward)(&g, &needs).map_err(|e| Error::Backward { op: r.name, source: e })?;
        for ((input, ig), need) in r.inputs.iter().zip(input_grads).zip(&needs) {
            let (Some(ig), true) = (ig, *need) else { continue };
            let want = input.shape();
            if ig.shape() != want {
                return Err(Error::Backward {
                    op: r.name,
                    source: tessera_engine::Error::shapes_hint(
                        r.name,
                        ig.shape(),
                        want,
                        "a backward rule returned a gradient of the wrong shape",
                    ),
                });
            }
            match grads.remove(&input.id()) {
                Some(prev) => grads.insert(input.id(), prev.add(&ig)?),
                None => grads.insert(input.id(), ig),
            };
        }
        drop(op_ref);
        if rec.is_some() {
            node.0.freed.set(true);
        }
    }
    Ok(())
}

impl Var {
    /// Backpropagates from a one-element output (the loss). Frees the graph.
    pub fn backward(&self) -> Result<()> {
        let v = self.value();
        if v.numel() != 1 {
            return Err(Error::NonScalar { shape: v.shape().to_vec() });
        }
        backward(self, v.ones_like()?, false)
    }

    /// Backpropagates from any output given its gradient (same shape as the output).
    /// `retain_graph` keeps the saved tensors for another pass.
    pub fn backward_with(&self, grad: &Tensor, retain_graph: bool) -> Result<()> {
        let v = self.value();
        if v.shape() != grad.shape() {
            return Err(Error::Engine(tessera_engine::Error::shapes_hint(
                "backward",
                v.shape(),
                grad.shape(),
                "the seed gradient must have the output's shape",
            )));
        }
        backward(self, grad.clone(), retain_graph)
    }
}
