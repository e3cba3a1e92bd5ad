//! Element types and the host buffer of each ([`CpuStorage`]). f32 is the training dtype, f64 is what gradient checks run in, i64 holds
//! labels and indices, u8 holds boolean masks (0 or 1). bf16 and f16 (`half::bf16` /
//! `half::f16` on the host) are 16-bit storage: every op loads them into f32, computes and
//! accumulates there, and rounds its result once, on the GPU in the kernels and on the CPU
//! by widening to the f32 kernels (`ops::widen`).

use std::fmt::Debug;

/// The element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    F32,
    F64,
    /// Integer indices and labels.
    I64,
    /// Boolean masks, stored as 0/1 bytes.
    U8,
    /// bfloat16: f32's 8 exponent bits, 7 mantissa bits (range of f32, ~2-3 digits).
    BF16,
    /// IEEE half: 5 exponent bits, 10 mantissa bits (max 65504, ~3 digits).
    F16,
}

impl DType {
    /// Size of one element in bytes.
    pub fn size_in_bytes(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F64 => 8,
            DType::I64 => 8,
            DType::U8 => 1,
            DType::BF16 | DType::F16 => 2,
        }
    }

    /// Whether the dtype is a floating-point one (the only ones autograd differentiates).
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
    }

    /// Whether the dtype is one of the 16-bit storage floats (bf16, f16).
    pub fn is_half(self) -> bool {
        matches!(self, DType::BF16 | DType::F16)
    }

    /// Every dtype, for parsers and exhaustive tests.
    pub const ALL: [DType; 6] = [DType::F32, DType::F64, DType::I64, DType::U8, DType::BF16, DType::F16];

    /// The lowercase name used in files and messages (`"f32"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F64 => "f64",
            DType::I64 => "i64",
            DType::U8 => "u8",
            DType::BF16 => "bf16",
            DType::F16 => "f16",
        }
    }
}

/// A Rust type that a tensor can hold.
pub trait Element: Copy + Send + Sync + Default + PartialOrd + Debug + 'static {
    const DTYPE: DType;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
    /// The typed buffer inside a storage, if it holds this type.
    fn buffer(s: &CpuStorage) -> Option<&[Self]>;
    /// Wraps a typed buffer into a storage.
    fn into_storage(v: Vec<Self>) -> CpuStorage;
}

/// The floating-point element types: every differentiable op is generic over this.
pub trait FloatElem: Element + num_traits::Float + std::iter::Sum + std::ops::AddAssign + std::ops::MulAssign {
    /// Fused multiply-add-free dot product of two equal-length slices, written so that it
    /// vectorizes (eight independent accumulators).
    fn dot(a: &[Self], b: &[Self]) -> Self {
        let mut acc = [Self::zero(); 8];
        let chunks = a.len() / 8;
        for c in 0..chunks {
            for l in 0..8 {
                acc[l] += a[c * 8 + l] * b[c * 8 + l];
            }
        }
        let mut s = acc.iter().fold(Self::zero(), |x, &y| x + y);
        for i in chunks * 8..a.len() {
            s += a[i] * b[i];
        }
        s
    }
    /// `from_f64` shorthand for constants in kernels.
    fn c(v: f64) -> Self {
        Self::from_f64(v)
    }
}

/// `Element` for `$t`, stored as `CpuStorage::$variant`, converting with the two closures.
macro_rules! impl_element {
    ($t:ty, $variant:ident, to_f64: |$x:ident| $to:expr, from_f64: |$v:ident| $from:expr) => {
        impl Element for $t {
            const DTYPE: DType = DType::$variant;
            #[inline(always)]
            fn to_f64(self) -> f64 {
                let $x = self;
                $to
            }
            #[inline(always)]
            fn from_f64($v: f64) -> Self {
                $from
            }
            fn buffer(s: &CpuStorage) -> Option<&[Self]> {
                match s {
                    CpuStorage::$variant(v) => Some(v),
                    _ => None,
                }
            }
            fn into_storage(v: Vec<Self>) -> CpuStorage {
                CpuStorage::$variant(v)
            }
        }
    };
    ($t:ty, $variant:ident) => {
        impl_element!($t, $variant, to_f64: |x| x as f64, from_f64: |v| v as $t);
    };
}
impl_element!(f32, F32);
impl_element!(f64, F64);
impl_element!(i64, I64);
impl_element!(u8, U8);
// The halves convert through f32 in both directions (f64 -> f32 -> half, as PyTorch and the
// CUDA kernels do), so every backend rounds a given value to the same half.
impl_element!(half::bf16, BF16, to_f64: |x| x.to_f32() as f64, from_f64: |v| half::bf16::from_f32(v as f32));
impl_element!(half::f16, F16, to_f64: |x| x.to_f32() as f64, from_f64: |v| half::f16::from_f32(v as f32));
impl FloatElem for f32 {}
impl FloatElem for f64 {}

/// Runs `$body` with `$T` bound to the Rust type of a float dtype; other dtypes are an error
/// naming `$op`.
#[macro_export]
macro_rules! with_float {
    ($dtype:expr, $op:expr, |$T:ident| $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
            other if other.is_half() => Err($crate::Error::HalfOnCpu { op: $op, dtype: other }),
            other => Err($crate::Error::UnsupportedDType { op: $op, dtype: other, expected: "f32 or f64" }),
        }
    };
}

/// Runs `$body` with `$T` bound to the Rust type of any dtype.
#[macro_export]
macro_rules! with_any {
    ($dtype:expr, |$T:ident| $body:expr) => {
        match $dtype {
            $crate::DType::F32 => {
                #[allow(dead_code)]
                type $T = f32;
                $body
            }
            $crate::DType::F64 => {
                #[allow(dead_code)]
                type $T = f64;
                $body
            }
            $crate::DType::I64 => {
                #[allow(dead_code)]
                type $T = i64;
                $body
            }
            $crate::DType::U8 => {
                #[allow(dead_code)]
                type $T = u8;
                $body
            }
            $crate::DType::BF16 => {
                #[allow(dead_code)]
                type $T = $crate::half::bf16;
                $body
            }
            $crate::DType::F16 => {
                #[allow(dead_code)]
                type $T = $crate::half::f16;
                $body
            }
        }
    };
}

/// Traits kernels need in scope to call `T::zero()`, `T::from_f64(..)` on concrete types.
pub(crate) mod prelude {
    pub use super::{Element as _, FloatElem as _};
    pub use num_traits::{Float as _, One as _, Zero as _};
}

/// Host memory: one typed buffer.
#[derive(Debug, Clone)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F64(Vec<f64>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    BF16(Vec<half::bf16>),
    F16(Vec<half::f16>),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F64(_) => DType::F64,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::U8(_) => DType::U8,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::F16(_) => DType::F16,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F64(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
            CpuStorage::U8(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
