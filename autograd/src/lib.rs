//! Reverse-mode automatic differentiation over tessera engine ops.
