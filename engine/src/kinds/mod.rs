//! The ground floor of the engine: what an op *is* (its kind, its parameters, its scalar
//! math), apart from any tensor or device. Every backend (`cpu/`, `cuda/`) and every op
//! (`ops/`) imports these; they import nothing but the dtypes.

pub mod binary;
pub mod conv;
pub mod reduce;
pub mod shape;
pub mod unary;

pub use binary::{BinaryOp, CmpOp};
pub use conv::{ConvGeom, Pair};
pub use reduce::ReduceOp;
pub use shape::PadMode;
pub use unary::{DerivativeNeeds, UnaryOp};
