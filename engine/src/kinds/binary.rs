//! The elementwise functions of two operands and the comparisons, with their scalar math
//! (what the CPU kernels apply per element; ptx/kernels/elementwise.cu mirrors it).

use crate::dtype::FloatElem;

/// An elementwise function of two float tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
}

impl BinaryOp {
    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Pow => "pow",
            BinaryOp::Maximum => "maximum",
            BinaryOp::Minimum => "minimum",
        }
    }

    #[inline(always)]
    pub fn apply<T: FloatElem>(self, a: T, b: T) -> T {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            BinaryOp::Pow => a.powf(b),
            // Ties go to the left operand (its gradient takes them, deterministically).
            BinaryOp::Maximum => {
                if b > a {
                    b
                } else {
                    a
                }
            }
            BinaryOp::Minimum => {
                if b < a {
                    b
                } else {
                    a
                }
            }
        }
    }
}

/// An elementwise comparison; the result is a u8 mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }

    #[inline(always)]
    pub fn apply<T: PartialOrd>(self, a: T, b: T) -> u8 {
        (match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
        }) as u8
    }
}
