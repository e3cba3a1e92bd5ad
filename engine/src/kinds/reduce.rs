//! What a reduction computes per row.

/// What a reduction computes per row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReduceOp {
    Sum,
    Mean,
    Max,
    Min,
    /// Variance; `unbiased` divides by `n - 1` instead of `n`.
    Var {
        unbiased: bool,
    },
    LogSumExp,
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Mean => "mean",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::Var { .. } => "var",
            ReduceOp::LogSumExp => "logsumexp",
        }
    }
}
