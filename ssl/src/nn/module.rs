//! The module abstraction: a layer or model that maps a [`Var`] to a [`Var`] and exposes its
//! parameters, buffers and train/eval flags under hierarchical names (`layer1.0.conv1.weight`)
//! that follow torchvision's and timm's state dicts, so checkpoints load by name.
//!
//! Everything is reachable through one method, [`Module::visit`]; the provided methods
//! (`named_parameters`, `set_training`, `freeze`, ...) are built on it. All state lives in
//! cells, so `forward(&self)` works and a model can be shared by reference.
//!
//! **Freezing.** A [`Var`] is a parameter or a constant for its whole life, so a frozen
//! parameter keeps its `Var` (optimizers and checkpoints still see it) and layers read it
//! through [`Param::get`], which hands out a detached constant while frozen: nothing upstream
//! of a frozen parameter records a graph for it, and it never receives a gradient. Linear
//! probing calls `encoder.freeze()` (and usually `encoder.set_training(false)`) and builds
//! its optimizer on the head's parameters only.

use std::cell::{Cell, RefCell};
use tessera_autograd::{Result, Var};
use tessera_engine::{DType, Device, Tensor};

/// A learnable tensor of a module: a parameter [`Var`] plus a frozen flag (see the module
/// docs). The `Var` sits in a `RefCell` only so [`Module::to_dtype`] can replace it.
pub struct Param {
    var: RefCell<Var>,
    frozen: Cell<bool>,
}

impl Param {
    /// A trainable parameter holding `value` (f32 or f64).
    pub fn new(value: Tensor) -> Result<Param> {
        Ok(Param { var: RefCell::new(Var::param(value)?), frozen: Cell::new(false) })
    }

    /// The value to compute with: the parameter itself, or a detached constant while frozen.
    pub fn get(&self) -> Var {
        let v = self.var.borrow();
        if self.frozen.get() {
            v.detach()
        } else {
            v.clone()
        }
    }

    /// The parameter `Var` itself (what optimizers update and checkpoints read), frozen or not.
    pub fn var(&self) -> Var {
        self.var.borrow().clone()
    }

    pub fn value(&self) -> Tensor {
        self.var.borrow().value()
    }

    pub fn is_frozen(&self) -> bool {
        self.frozen.get()
    }

    pub fn set_frozen(&self, frozen: bool) {
        self.frozen.set(frozen);
    }

    /// Substitutes another `Var` of the same shape and dtype (functional use: gradient
    /// checks run a layer on the checker's leaves). Optimizers built before keep the old one.
    pub fn set_var(&self, var: Var) -> Result<()> {
        let (old, new) = (self.value(), var.value());
        if old.shape() != new.shape() || old.dtype() != new.dtype() {
            let hint = format!("a parameter keeps its shape and dtype ({})", old.dtype().name());
            return Err(tessera_engine::Error::shapes_hint("Param::set_var", old.shape(), new.shape(), hint).into());
        }
        *self.var.borrow_mut() = var;
        Ok(())
    }

    /// Replaces the parameter by a new `Var` holding `convert(value)` (a dtype or device
    /// change). Vars handed out before (to an optimizer, say) no longer belong to the module.
    fn convert(&self, convert: &dyn Fn(&Tensor) -> tessera_engine::Result<Tensor>) -> Result<()> {
        let old = self.value();
        let new = convert(&old)?;
        if !new.shares_storage(&old) {
            *self.var.borrow_mut() = Var::param(new)?;
        }
        Ok(())
    }
}

/// A non-learnable tensor saved in the state dict (BatchNorm's running statistics and
/// `num_batches_tracked`, fixed positional embeddings).
pub struct Buffer(RefCell<Tensor>);

impl Buffer {
    pub fn new(value: Tensor) -> Buffer {
        Buffer(RefCell::new(value))
    }

    pub fn get(&self) -> Tensor {
        self.0.borrow().clone()
    }

    /// Replaces the value. The shape must stay the same; float buffers may change dtype only
    /// through [`Module::to_dtype`].
    pub fn set(&self, value: Tensor) -> Result<()> {
        let old = self.0.borrow();
        if old.shape() != value.shape() || old.dtype() != value.dtype() {
            let hint = format!("a buffer keeps its shape and dtype ({})", old.dtype().name());
            return Err(tessera_engine::Error::shapes_hint("Buffer::set", old.shape(), value.shape(), hint).into());
        }
        drop(old);
        *self.0.borrow_mut() = value;
        Ok(())
    }
}

/// One item a module exposes to [`Module::visit`].
pub enum Entry<'a> {
    Param(&'a Param),
    Buffer(&'a Buffer),
    /// A train/eval flag (`true` = training) of a layer whose behaviour depends on it
    /// (BatchNorm, Dropout); reported under the layer's own prefix.
    Mode(&'a Cell<bool>),
}

/// `prefix.name`, or `name` at the root.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// A layer or model. Implementors write `forward` and `visit`; everything else is provided.
pub trait Module {
    /// Applies the module. Shapes are documented on each implementor.
    fn forward(&self, x: &Var) -> Result<Var>;

    /// Calls `f` with the full name of every parameter, buffer and mode flag, in a fixed
    /// order (declaration order, like PyTorch's `state_dict`). Containers recurse into their
    /// children with `join(prefix, child_name)`.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>));

    /// The Vision Transformer this module is (through any `Box` or `Rc`), so diagnostics can
    /// read its attention from a `dyn Module` encoder; `None` for everything else.
    fn as_vision_transformer(&self) -> Option<&super::vit::VisionTransformer> {
        None
    }

    /// Parameters by name (`conv1.weight`, `layer1.0.bn1.bias`, ...), frozen ones included.
    fn named_parameters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, e| {
            if let Entry::Param(p) = e {
                out.push((n.to_string(), p.var()));
            }
        });
        out
    }

    /// Parameters that are not frozen, by name: what an optimizer should update.
    fn named_trainable_parameters(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, e| {
            if let Entry::Param(p) = e {
                if !p.is_frozen() {
                    out.push((n.to_string(), p.var()));
                }
            }
        });
        out
    }

    fn parameters(&self) -> Vec<Var> {
        self.named_parameters().into_iter().map(|(_, v)| v).collect()
    }

    fn trainable_parameters(&self) -> Vec<Var> {
        self.named_trainable_parameters().into_iter().map(|(_, v)| v).collect()
    }

    /// Total number of parameter elements (frozen ones included).
    fn num_parameters(&self) -> usize {
        self.named_parameters().iter().map(|(_, v)| v.value().numel()).sum()
    }

    /// Buffers by name (`bn1.running_mean`, `bn1.num_batches_tracked`, ...).
    fn named_buffers(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, e| {
            if let Entry::Buffer(b) = e {
                out.push((n.to_string(), b.get()));
            }
        });
        out
    }

    /// Parameters and buffers by name, in visit order: the checkpoint's content.
    fn state_dict(&self) -> Vec<(String, Tensor)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, e| match e {
            Entry::Param(p) => out.push((n.to_string(), p.value())),
            Entry::Buffer(b) => out.push((n.to_string(), b.get())),
            Entry::Mode(_) => {}
        });
        out
    }

    /// Switches every BatchNorm and Dropout inside to training (`true`) or eval mode.
    fn set_training(&self, training: bool) {
        self.visit("", &mut |_, e| {
            if let Entry::Mode(m) = e {
                m.set(training);
            }
        });
    }

    /// Whether the module is in training mode (the first mode flag found; `true` for a
    /// module without any, since it behaves the same either way).
    fn is_training(&self) -> bool {
        let mut mode = None;
        self.visit("", &mut |_, e| {
            if let (Entry::Mode(m), None) = (e, mode) {
                mode = Some(m.get());
            }
        });
        mode.unwrap_or(true)
    }

    /// Freezes every parameter: forward passes then treat them as constants (see the module docs).
    fn freeze(&self) {
        set_frozen(self, true);
    }

    fn unfreeze(&self) {
        set_frozen(self, false);
    }

    /// Converts every parameter and float buffer to `dtype` (f32 for training, f64 for
    /// gradient checks). Parameters become new `Var`s: build optimizers afterwards.
    fn to_dtype(&self, dtype: DType) -> Result<()> {
        convert_all(self, &|t| if t.dtype().is_float() { t.to_dtype(dtype) } else { Ok(t.clone()) })
    }

    /// Moves every parameter and buffer to `device` (`Device::Cuda(0)` to train on a GPU).
    /// Parameters become new `Var`s: build optimizers afterwards.
    fn to_device(&self, device: Device) -> Result<()> {
        convert_all(self, &|t| t.to_device(device))
    }

    /// Where the parameters live (the first parameter's device; the host for a module
    /// without parameters).
    fn device(&self) -> Device {
        self.parameters().first().map_or(Device::Cpu, |p| p.value().device())
    }
}

/// Runs `f` with `m` in eval mode and without a graph, then puts `m` back in the mode it
/// was in: how every measurement and picture of a model in training is taken, so none of
/// them moves a BatchNorm's running statistics or records a graph.
pub fn in_eval_mode<M: Module + ?Sized, T>(m: &M, f: impl FnOnce() -> T) -> T {
    let was_training = m.is_training();
    m.set_training(false);
    let out = {
        let _g = tessera_autograd::no_grad();
        f()
    };
    m.set_training(was_training);
    out
}

/// Replaces every parameter and buffer of `m` by `convert` of it.
fn convert_all<M: Module + ?Sized>(m: &M, convert: &dyn Fn(&Tensor) -> tessera_engine::Result<Tensor>) -> Result<()> {
    let mut result = Ok(());
    m.visit("", &mut |_, e| {
        if result.is_err() {
            return;
        }
        result = match e {
            Entry::Param(p) => p.convert(convert),
            Entry::Buffer(b) => convert(&b.get()).map(|t| *b.0.borrow_mut() = t).map_err(Into::into),
            Entry::Mode(_) => Ok(()),
        };
    });
    result
}

/// A backbone that maps images to feature vectors `[N, feature_dim]` (ResNet with
/// `num_classes = None`, ViT without a head), so methods can hold any of them as
/// `Box<dyn Encoder>`.
pub trait Encoder: Module {
    /// Width of what `forward` returns (the features of an encoder without a head).
    fn output_dim(&self) -> usize;
}

impl<E: Encoder + ?Sized> Encoder for Box<E> {
    fn output_dim(&self) -> usize {
        (**self).output_dim()
    }
}

fn set_frozen<M: Module + ?Sized>(m: &M, frozen: bool) {
    m.visit("", &mut |_, e| {
        if let Entry::Param(p) = e {
            p.set_frozen(frozen);
        }
    });
}

impl<M: Module + ?Sized> Module for Box<M> {
    fn forward(&self, x: &Var) -> Result<Var> {
        (**self).forward(x)
    }
    fn as_vision_transformer(&self) -> Option<&super::vit::VisionTransformer> {
        (**self).as_vision_transformer()
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        (**self).visit(prefix, f)
    }
}

impl<M: Module + ?Sized> Module for std::rc::Rc<M> {
    fn forward(&self, x: &Var) -> Result<Var> {
        (**self).forward(x)
    }
    fn as_vision_transformer(&self) -> Option<&super::vit::VisionTransformer> {
        (**self).as_vision_transformer()
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        (**self).visit(prefix, f)
    }
}
