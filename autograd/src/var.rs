//! The differentiable tensor. A [`Var`] is a node of the graph: a value, the gradient
//! accumulated into it (leaves) and, for results of ops, the rule that maps the output's
//! gradient to its inputs' gradients. The rule is written next to its op's forward.

use crate::{Error, Result};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use tessera_engine::Tensor;

/// Maps the output gradient to one gradient per input (`None` where the input needs none;
/// `needs[i]` says which inputs want one, so rules skip work nobody uses).
pub type BackwardFn = Box<dyn Fn(&Tensor, &[bool]) -> tessera_engine::Result<Vec<Option<Tensor>>>>;

pub(crate) struct Recorded {
    pub name: &'static str,
    pub inputs: Vec<Edge>,
    pub backward: BackwardFn,
}

/// The graph's reference to an op's input: it routes the gradient but does not keep the
/// input's value alive. What a backward rule needs of its inputs it captures as tensors when
/// the op runs; an intermediate value nobody else holds is then freed as soon as its last
/// [`Var`] handle is dropped, during the forward pass, as PyTorch frees what autograd did not
/// save. (Before, every intermediate value lived until backward reached it.)
pub(crate) struct Edge(pub(crate) Rc<Node>);

impl Edge {
    /// A handle on the input's node (its value may already be released).
    pub(crate) fn var(&self) -> Var {
        Var::handle(&self.0)
    }

    pub(crate) fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    pub(crate) fn shape(&self) -> &[usize] {
        &self.0.shape
    }

    /// The node's identity, as [`Var::id`].
    pub(crate) fn id(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }
}

pub(crate) struct Node {
    /// Released (an empty tensor) once an op's result has no handle left, see [`Edge`].
    pub value: RefCell<Tensor>,
    /// The value's shape, kept when the value is released (backward checks gradients with it).
    pub shape: Vec<usize>,
    /// Live [`Var`] handles on this node (graph edges do not count).
    pub handles: Cell<usize>,
    pub grad: RefCell<Option<Tensor>>,
    pub requires_grad: bool,
    /// The op that made this value; taken (and its saved tensors freed) by backward.
    pub op: RefCell<Option<Recorded>>,
    /// Set once backward has consumed `op`, to tell a freed graph from a leaf.
    pub freed: Cell<bool>,
    pub name: RefCell<Option<String>>,
}

/// A tensor that takes part in reverse-mode differentiation. Cloning shares the node.
pub struct Var(pub(crate) Rc<Node>);

impl Clone for Var {
    fn clone(&self) -> Var {
        Var::handle(&self.0)
    }
}

impl Drop for Var {
    /// The last handle on an op's result releases its value: the graph only routes
    /// gradients through the node (see [`Edge`]). Leaves keep theirs.
    fn drop(&mut self) {
        let left = self.0.handles.get() - 1;
        self.0.handles.set(left);
        if left == 0 && self.0.op.borrow().is_some() {
            let dtype = self.0.value.borrow().dtype();
            if let Ok(empty) = Tensor::zeros(&[0], dtype) {
                *self.0.value.borrow_mut() = empty;
            }
        }
    }
}

impl std::fmt::Debug for Var {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = self.0.op.borrow().as_ref().map(|r| r.name);
        write!(f, "Var({:?}, requires_grad={}, op={:?})", self.value(), self.requires_grad(), op)
    }
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Whether ops are currently recorded on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// While alive, nothing is recorded on this thread (MoCo's key encoder, EMA updates,
/// evaluation). Restores the previous state when dropped, so guards nest.
#[must_use = "the guard disables recording only while it is alive"]
pub struct NoGradGuard {
    previous: bool,
}

/// Disables recording until the returned guard is dropped.
pub fn no_grad() -> NoGradGuard {
    NoGradGuard { previous: GRAD_ENABLED.with(|g| g.replace(false)) }
}

impl Drop for NoGradGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.previous));
    }
}

impl Var {
    /// One more handle on `node`, counted (see [`Node::handles`]).
    fn handle(node: &Rc<Node>) -> Var {
        node.handles.set(node.handles.get() + 1);
        Var(node.clone())
    }

    fn make(value: Tensor, requires_grad: bool, op: Option<Recorded>) -> Var {
        Var(Rc::new(Node {
            shape: value.shape().to_vec(),
            handles: Cell::new(1),
            value: RefCell::new(value),
            grad: RefCell::new(None),
            requires_grad,
            op: RefCell::new(op),
            freed: Cell::new(false),
            name: RefCell::new(None),
        }))
    }

    /// A leaf that accumulates a gradient (a parameter). Only float tensors can.
    pub fn param(value: Tensor) -> Result<Var> {
        if !value.dtype().is_float() {
            return Err(Error::Engine(tessera_engine::Error::UnsupportedDType {
                op: "param",
                dtype: value.dtype(),
                expected: "f32 or f64",
            }));
        }
        Ok(Var::make(value, true, None))
    }

    /// A leaf that needs no gradient (inputs, targets, masks).
    pub fn constant(value: Tensor) -> Var {
        Var::make(value, false, None)
    }

    /// Records the result of an op. When recording is off or no input needs a gradient, the
    /// result is a constant and `backward` is dropped at once.
    pub fn from_op(
        name: &'static str,
        value: Tensor,
        inputs: &[&Var],
        backward: impl Fn(&Tensor, &[bool]) -> tessera_engine::Result<Vec<Option<Tensor>>> + 'static,
    ) -> Var {
        if !is_grad_enabled() || !inputs.iter().any(|v| v.requires_grad()) {
            return Var::constant(value);
        }
        let rec = Recorded { name, inputs: inputs.iter().map(|v| Edge(v.0.clone())).collect(), backward: Box::new(backward) };
        Var::make(value, true, Some(rec))
    }

    /// The current value (a cheap shared handle).
    pub fn value(&self) -> Tensor {
        self.0.value.borrow().clone()
    }

    /// Replaces a leaf's value (optimizer steps, EMA updates, loading checkpoints). The shape
    /// and dtype must stay the same.
    pub fn set_value(&self, value: Tensor) -> Result<()> {
        let old = self.0.value.borrow();
        if old.shape() != value.shape() || old.dtype() != value.dtype() {
            return Err(Error::Engine(tessera_engine::Error::shapes_hint(
                "set_value",
                old.shape(),
                value.shape(),
                format!("a value must keep its shape and dtype ({:?})", old.dtype()),
            )));
        }
        drop(old);
        *self.0.value.borrow_mut() = value;
        Ok(())
    }

    pub fn shape(&self) -> Vec<usize> {
        self.0.shape.clone()
    }

    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }

    /// Whether this is a leaf (made by `param` or `constant`, not by an op).
    pub fn is_leaf(&self) -> bool {
        self.0.op.borrow().is_none() && !self.0.freed.get()
    }

    /// The gradient accumulated so far (leaves only), if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.borrow().clone()
    }

    /// Overwrites the accumulated gradient (gradient clipping writes through this).
    pub fn set_grad(&self, grad: Option<Tensor>) {
        *self.0.grad.borrow_mut() = grad;
    }

    /// Forgets the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.borrow_mut() = None;
    }

    /// The same value cut from the graph: no gradient flows through the result.
    pub fn detach(&self) -> Var {
        Var::constant(self.value())
    }

    /// A name shown in messages (hierarchical parameter names, for example).
    pub fn set_name(&self, name: impl Into<String>) {
        *self.0.name.borrow_mut() = Some(name.into());
    }

    pub fn name(&self) -> Option<String> {
        self.0.name.borrow().clone()
    }

    /// Name of the op that produced this value, if it is recorded and not yet freed.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.op.borrow().as_ref().map(|r| r.name)
    }

    /// Identity of the node, for maps keyed by node.
    pub(crate) fn id(&self) -> usize {
        Rc::as_ptr(&self.0) as usize
    }

    /// Whether two handles are the same node.
    pub fn same_node(&self, other: &Var) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}
