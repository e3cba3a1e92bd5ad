//! Matrix products: 1-D, 2-D and batched N-D operands with NumPy's broadcasting of batch
//! dims. Operands are passed to the GEMM with their own strides: transposed or expanded
//! views are never copied, on the CPU or on a GPU (where f32 products follow
//! [`cuda::set_matmul_precision`](crate::cuda::set_matmul_precision)).

use crate::backend::{cuda_operands, Backend};
use crate::cpu;
#[allow(unused_imports)]
use crate::dtype::prelude::*;
use crate::layout::broadcast_shapes;
use crate::ops::widen::via_f32;
use crate::{with_float, DType, Error, Result, Tensor};

impl Tensor {
    /// `self @ rhs` with NumPy semantics: a 1-D lhs is a row vector and a 1-D rhs a column
    /// vector (that dim is removed from the result); leading dims broadcast.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        let p = Product::of(self, rhs)?;
        let out = if let Backend::Cuda(_) = self.backend() {
            self.expect_float("matmul")?;
            let [a, b] = cuda_operands("matmul", [&p.a, &p.b])?;
            Tensor::from_cuda_array(crate::cuda::matmul::batched_matmul(&a, &b, &p.batch, p.m, p.k, p.n)?)
        } else if let Some(out) = bf16_on_dot_kernel(&p.a, &p.b, &p.batch, p.m, p.k, p.n, &p.out_shape)? {
            out
        } else {
            if let Some(out) = via_f32([self, rhs], |[a, b]| a.matmul(&b))? {
                return Ok(out);
            }
            let (a, b) = (&p.a, &p.b);
            with_float!(self.dtype(), "matmul", |T| {
                let (ab, bb) = (a.buffer::<T>("matmul")?, b.buffer::<T>("matmul")?);
                Ok::<_, Error>(Tensor::from_vec_unchecked(
                    cpu::matmul::batched_gemm(ab, a.layout(), bb, b.layout(), &p.batch, p.m, p.k, p.n),
                    &p.out_shape,
                ))
            })?
        };
        p.drop_vector_dims(out)
    }

    /// [`matmul`](Self::matmul) whose result keeps the product's f32 accumulators for bf16 /
    /// f16 operands (an f32 tensor, not rounded to the operands' dtype); other dtypes: the
    /// plain product. For compositions that round once at their end, as a convolution's
    /// column sums and bias add do on a GPU.
    pub(crate) fn matmul_f32_result(&self, rhs: &Tensor) -> Result<Tensor> {
        if !self.dtype().is_half() {
            return self.matmul(rhs);
        }
        if let Backend::Cuda(_) = self.backend() {
            let p = Product::of(self, rhs)?;
            let [a, b] = cuda_operands("matmul", [&p.a, &p.b])?;
            let out = Tensor::from_cuda_array(crate::cuda::matmul::batched_matmul_f32_result(&a, &b, &p.batch, p.m, p.k, p.n)?);
            return p.drop_vector_dims(out);
        }
        // The host's half products already run in f32: widening first is exact.
        self.to_dtype(DType::F32)?.matmul(&rhs.to_dtype(DType::F32)?)
    }
}

/// A checked `a @ b`: the operands as matrices (a 1-D one given its unit dim), the broadcast
/// batch dims and the product's sizes.
struct Product {
    a: Tensor,
    b: Tensor,
    batch: Vec<usize>,
    m: usize,
    k: usize,
    n: usize,
    out_shape: Vec<usize>,
    ranks: (usize, usize),
}

impl Product {
    fn of(lhs: &Tensor, rhs: &Tensor) -> Result<Product> {
        lhs.same_kind("matmul", rhs)?;
        if lhs.rank() == 0 || rhs.rank() == 0 {
            return Err(Error::shapes_hint("matmul", lhs.shape(), rhs.shape(), "both operands need at least one dim"));
        }
        let a = if lhs.rank() == 1 { lhs.unsqueeze(0)? } else { lhs.clone() };
        let b = if rhs.rank() == 1 { rhs.unsqueeze(1)? } else { rhs.clone() };
        let (m, k) = (a.shape()[a.rank() - 2], a.shape()[a.rank() - 1]);
        let (k2, n) = (b.shape()[b.rank() - 2], b.shape()[b.rank() - 1]);
        if k != k2 {
            return Err(Error::shapes_hint("matmul", lhs.shape(), rhs.shape(), format!("inner dims differ ({k} vs {k2})")));
        }
        let batch = broadcast_shapes("matmul", &a.shape()[..a.rank() - 2], &b.shape()[..b.rank() - 2])
            .map_err(|_| Error::shapes_hint("matmul", lhs.shape(), rhs.shape(), "batch dims do not broadcast"))?;
        let mut out_shape = batch.clone();
        out_shape.extend([m, n]);
        Ok(Product { a, b, batch, m, k, n, out_shape, ranks: (lhs.rank(), rhs.rank()) })
    }

    /// The result without the dims a 1-D operand contributed.
    fn drop_vector_dims(&self, out: Tensor) -> Result<Tensor> {
        match self.ranks {
            (1, 1) => out.reshape(&[]),
            (1, _) => out.squeeze_axis(-2),
            (_, 1) => out.squeeze_axis(-1),
            _ => Ok(out),
        }
    }
}

/// bf16 `a @ b` on the CPU's bf16 dot-product kernel where it has one: the products
/// accumulate in f32 and the result rounds to bf16 once, as the widened path and the GPU do
/// (up to summation order). `None` for other dtypes or CPUs.
#[allow(clippy::too_many_arguments)]
fn bf16_on_dot_kernel(
    a: &Tensor,
    b: &Tensor,
    batch: &[usize],
    m: usize,
    k: usize,
    n: usize,
    out_shape: &[usize],
) -> Result<Option<Tensor>> {
    if a.dtype() != DType::BF16 {
        return Ok(None);
    }
    let (ab, bb) = (a.buffer::<half::bf16>("matmul")?, b.buffer::<half::bf16>("matmul")?);
    Ok(cpu::matmul::batched_gemm_bf16(ab, a.layout(), bb, b.layout(), batch, m, k, n)
        .map(|c| Tensor::from_vec_unchecked(cpu::strided::map_slices(&c, cpu::bf16_cast::narrow_slice), out_shape)))
}

impl Tensor {
    /// `self @ weightᵀ + bias`, a linear layer's forward: `self` `[rows, in]`, `weight`
    /// `[out, in]` (PyTorch's layout, used transposed in place), `bias` `[out]` or none.
    /// On the CPU in f32 and f64 the bias joins the GEMM's output before it accumulates (one
    /// pass, one buffer, as PyTorch's `addmm`); elsewhere it is `matmul` then `add`.
    pub fn linear(&self, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        self.same_kind("linear", weight)?;
        let (xs, ws) = (self.shape(), weight.shape());
        if xs.len() != 2 || ws.len() != 2 || xs[1] != ws[1] {
            return Err(Error::shapes_hint("linear", xs, ws, "expects input [rows, in] and weight [out, in]"));
        }
        let (m, k, n) = (xs[0], xs[1], ws[0]);
        if let Some(b) = bias {
            self.same_kind("linear", b)?;
            if b.shape() != [n] {
                return Err(Error::shapes_hint("linear", ws, b.shape(), format!("the bias must have shape [{n}]")));
            }
        }
        let wt = weight.t()?;
        let plain_cpu = !matches!(self.backend(), Backend::Cuda(_)) && matches!(self.dtype(), DType::F32 | DType::F64);
        match bias {
            Some(b) if plain_cpu && m * n > 0 => {
                let b = b.contiguous()?;
                with_float!(self.dtype(), "linear", |T| {
                    let (xb, wb, bb) = (self.buffer::<T>("linear")?, wt.buffer::<T>("linear")?, b.buffer::<T>("linear")?);
                    let bias = &bb[b.layout().offset..b.layout().offset + n];
                    Ok(Tensor::from_vec_unchecked(cpu::matmul::gemm_add_rows(xb, self.layout(), wb, wt.layout(), bias, m, k, n), &[m, n]))
                })
            }
            Some(b) => self.matmul(&wt)?.add(b),
            None => self.matmul(&wt),
        }
    }
}
