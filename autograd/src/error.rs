//! Errors of the autograd layer.

/// Why differentiation failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Engine(#[from] tessera_engine::Error),
    #[error("backward of {op}: {source}")]
    Backward { op: &'static str, source: tessera_engine::Error },
    #[error("backward() needs a one-element output, this one has shape {shape:?}; use backward_with(grad) for others")]
    NonScalar { shape: Vec<usize> },
    #[error("backward through a graph that has already been freed; pass retain_graph = true to the first backward_with to run it twice")]
    GraphFreed,
    #[error("backward from a value that does not require grad (it was computed under no_grad, or from constants only)")]
    NoGradient,
    #[error("gradcheck: {0}")]
    Gradcheck(String),
}

pub type Result<T> = std::result::Result<T, Error>;
