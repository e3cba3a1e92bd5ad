//! Parameter-free layers and containers: Identity, activations, Sequential.

use super::module::{join, Entry, Module};
use tessera_autograd::{Result, Var};

/// Returns its input (torchvision's `fc = Identity` when a ResNet is used as an encoder).
#[derive(Debug, Default, Clone, Copy)]
pub struct Identity;

impl Module for Identity {
    fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.clone())
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, Entry<'_>)) {}
}

/// An elementwise nonlinearity as a module (for [`Sequential`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    /// The exact (erf) GELU, PyTorch's `nn.GELU()` default.
    Gelu,
    Tanh,
    Silu,
}

impl Module for Activation {
    fn forward(&self, x: &Var) -> Result<Var> {
        match self {
            Activation::Relu => x.relu(),
            Activation::Gelu => x.gelu(),
            Activation::Tanh => x.tanh(),
            Activation::Silu => x.silu(),
        }
    }
    fn visit(&self, _: &str, _: &mut dyn FnMut(&str, Entry<'_>)) {}
}

/// Modules applied in order, named `0`, `1`, ... like `nn.Sequential` (or by the names
/// given to [`Sequential::push_named`]).
#[derive(Default)]
pub struct Sequential {
    layers: Vec<(String, Box<dyn Module>)>,
}

impl Sequential {
    pub fn new() -> Sequential {
        Sequential::default()
    }

    /// Appends a layer named by its position.
    pub fn push(mut self, layer: impl Module + 'static) -> Sequential {
        let name = self.layers.len().to_string();
        self.layers.push((name, Box::new(layer)));
        self
    }

    /// Appends a layer under an explicit name.
    pub fn push_named(mut self, name: impl Into<String>, layer: impl Module + 'static) -> Sequential {
        self.layers.push((name.into(), Box::new(layer)));
        self
    }

    pub fn len(&self) -> usize {
        self.layers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// The layer at position `i`.
    pub fn get(&self, i: usize) -> Option<&dyn Module> {
        self.layers.get(i).map(|(_, m)| m.as_ref())
    }
}

impl Module for Sequential {
    fn forward(&self, x: &Var) -> Result<Var> {
        let mut h = x.clone();
        for (_, layer) in &self.layers {
            h = layer.forward(&h)?;
        }
        Ok(h)
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (name, layer) in &self.layers {
            layer.visit(&join(prefix, name), f);
        }
    }
}
