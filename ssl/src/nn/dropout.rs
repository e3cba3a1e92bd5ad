//! Dropout (`nn.Dropout(p)`): active in training mode only.

use super::module::{Entry, Module};
use std::cell::{Cell, RefCell};
use tessera_autograd::{fused, Result, Var};
use tessera_engine::Generator;

/// Zeroes each element with probability `p` and scales the rest by `1/(1-p)` in training
/// mode; the identity in eval mode. Masks come from the layer's own generator, seeded from
/// the one passed at construction, so a seed fixes them.
pub struct Dropout {
    pub p: f64,
    gen: RefCell<Generator>,
    training: Cell<bool>,
}

impl Dropout {
    pub fn new(p: f64, gen: &mut Generator) -> Result<Dropout> {
        if !(0.0..1.0).contains(&p) {
            return Err(tessera_engine::Error::invalid("Dropout", format!("p must lie in [0, 1), got {p}")).into());
        }
        Ok(Dropout { p, gen: RefCell::new(Generator::new(gen.next_below(u64::MAX))), training: Cell::new(true) })
    }
}

impl Module for Dropout {
    fn forward(&self, x: &Var) -> Result<Var> {
        if !self.training.get() || self.p == 0.0 {
            return Ok(x.clone());
        }
        fused::dropout(x, self.p, &mut self.gen.borrow_mut())
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        f(prefix, Entry::Mode(&self.training));
    }
}
