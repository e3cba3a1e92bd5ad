//! Each kind of bad input gets its own error, checked by its message: wrong shapes (naming the
//! op and both shapes), axes out of range, dtype and device mismatches, empty tensors where a
//! value is needed, shape overflow, and length mismatches.

mod common;

use common::err_msg;
use tessera::engine::{DType, Device, Error, Generator, Tensor, UnaryOp};

fn f32s(shape: &[usize]) -> Tensor {
    Tensor::ones(shape, DType::F32).unwrap()
}

/// Asserts the message contains every part.
fn says(msg: String, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} should mention {p:?}");
    }
}

#[test]
fn wrong_shapes_name_the_op_and_both_shapes() {
    let (a, b) = (f32s(&[2, 3]), f32s(&[4]));
    says(err_msg(a.add(&b)), &["add", "[2, 3]", "[4]", "broadcast"]);
    says(err_msg(a.mul(&f32s(&[3, 3]))), &["mul", "[2, 3]", "[3, 3]"]);
    says(err_msg(a.lt(&b)), &["lt", "[2, 3]", "[4]"]);
    says(err_msg(Tensor::where_(&Tensor::ones(&[2, 3], DType::U8).unwrap(), &a, &b)), &["where", "[2, 3]", "[4]"]);
    says(err_msg(a.matmul(&f32s(&[4, 5]))), &["matmul", "[2, 3]", "[4, 5]", "inner dims differ (3 vs 4)"]);
    says(err_msg(f32s(&[2, 2, 3]).matmul(&f32s(&[3, 3, 4]))), &["matmul", "[2, 2, 3]", "[3, 3, 4]", "batch"]);
    says(err_msg(f32s(&[]).matmul(&a)), &["matmul", "[]", "[2, 3]"]);
    says(err_msg(a.reshape(&[4, 2])), &["reshape", "[2, 3]", "[4, 2]"]);
    says(err_msg(a.reshape(&[4, -1])), &["reshape", "-1", "[2, 3]"]);
    says(err_msg(a.expand(&[4, 3])), &["expand", "[2, 3]", "[4, 3]"]);
    says(err_msg(a.expand(&[3])), &["expand", "[2, 3]", "[3]"]);
    says(err_msg(a.sum_to_shape(&[4])), &["sum_to_shape", "[2, 3]", "[4]"]);
    says(err_msg(a.sum_to_shape(&[1, 2, 3])), &["sum_to_shape", "[2, 3]", "[1, 2, 3]"]);
    says(err_msg(a.unary_backward(UnaryOp::Exp, &a, &b)), &["exp", "[2, 3]", "[4]"]);
    says(err_msg(a.softmax_backward(&f32s(&[3, 2]), 1)), &["softmax_backward", "[2, 3]", "[3, 2]"]);
    says(err_msg(a.log_softmax_backward(&b, 0)), &["log_softmax_backward", "[2, 3]", "[4]"]);
    assert!(matches!(a.add(&b), Err(Error::ShapeMismatch { op: "add", .. })));
}

#[test]
fn axes_out_of_range() {
    let a = f32s(&[2, 3]);
    let out_of_range = "is out of range for a tensor of rank 2 (shape [2, 3])";
    says(err_msg(a.sum(&[2], false)), &["sum: axis 2", out_of_range]);
    says(err_msg(a.max(&[-3], true)), &["max: axis -3", out_of_range]);
    says(err_msg(a.softmax(2)), &["softmax: axis 2", out_of_range]);
    says(err_msg(a.log_softmax(-3)), &["log_softmax: axis -3", out_of_range]);
    says(err_msg(a.argmax(5, false)), &["argmax: axis 5", out_of_range]);
    says(err_msg(a.transpose(0, 2)), &["transpose: axis 2", out_of_range]);
    says(err_msg(a.narrow(2, 0, 1)), &["narrow: axis 2", out_of_range]);
    says(err_msg(a.select(-3, 0)), &["select: axis -3", out_of_range]);
    says(err_msg(a.flip(&[2])), &["flip: axis 2", out_of_range]);
    says(err_msg(a.squeeze_axis(2)), &["squeeze: axis 2", out_of_range]);
    says(err_msg(a.flatten(0, 2)), &["flatten: axis 2", out_of_range]);
    says(err_msg(a.dim(2)), &["dim: axis 2", out_of_range]);
    says(err_msg(a.unsqueeze(3)), &["unsqueeze: axis 3", out_of_range]);
    says(err_msg(Tensor::scalar(1.0f32).softmax(0)), &["softmax: axis 0", "rank 0"]);
    assert!(matches!(a.sum(&[2], false), Err(Error::AxisOutOfRange { op: "sum", axis: 2, rank: 2, .. })));
    // Related misuse of axes and ranges.
    says(err_msg(a.sum(&[1, -1], false)), &["sum", "listed twice"]);
    says(err_msg(a.squeeze_axis(0)), &["squeeze", "size 2, not 1"]);
    says(err_msg(a.narrow(1, 2, 2)), &["narrow", "2..4", "size 3"]);
    says(err_msg(a.select(0, 2)), &["select", "index 2 is outside axis 0 of size 2", "[2, 3]"]);
    says(err_msg(a.permute(&[0, 0])), &["permute", "[0, 0]", "not a permutation"]);
    says(err_msg(a.permute(&[1])), &["permute", "not a permutation"]);
    says(err_msg(a.slice(0, 0, 2, 0)), &["slice", "step"]);
    says(err_msg(a.flatten(1, 0)), &["flatten", "start axis 1 comes after end axis 0"]);
    says(err_msg(f32s(&[3]).t()), &["t", "at least 2 dims", "[3]"]);
}

#[test]
fn dtype_mismatches_and_unsupported_dtypes() {
    let (a, b) = (f32s(&[2, 3]), Tensor::ones(&[2, 3], DType::F64).unwrap());
    let i = Tensor::ones(&[2, 3], DType::I64).unwrap();
    says(err_msg(a.add(&b)), &["add: dtypes F32 and F64 differ", "to_dtype"]);
    says(err_msg(a.matmul(&b.t().unwrap())), &["matmul: dtypes F32 and F64"]);
    says(err_msg(b.eq(&i)), &["eq: dtypes F64 and I64"]);
    says(err_msg(Tensor::where_(&Tensor::ones(&[2, 3], DType::U8).unwrap(), &a, &b)), &["where: dtypes F32 and F64"]);
    says(err_msg(a.unary_backward(UnaryOp::Exp, &a, &b)), &["exp: dtypes F32 and F64"]);
    assert!(matches!(a.add(&b), Err(Error::DTypeMismatch { op: "add", lhs: DType::F32, rhs: DType::F64 })));
    // Float-only ops refuse integer tensors, naming the op and the dtype.
    says(err_msg(i.exp()), &["exp: dtype I64 is not supported", "f32 or f64"]);
    says(err_msg(i.add(&i)), &["add: dtype I64 is not supported"]);
    says(err_msg(i.sum(&[], false)), &["sum: dtype I64"]);
    says(err_msg(Tensor::ones(&[3], DType::U8).unwrap().softmax(0)), &["softmax: dtype U8"]);
    says(err_msg(i.matmul(&i.t().unwrap())), &["matmul: dtype I64"]);
    says(err_msg(Tensor::where_(&a, &a, &a)), &["where: dtype F32 is not supported", "u8"]);
    says(err_msg(Generator::new(0).uniform(&[2], 0.0, 1.0, DType::I64)), &["uniform: dtype I64"]);
    says(err_msg(Generator::new(0).normal(&[2], 0.0, 1.0, DType::U8)), &["normal: dtype U8"]);
    // Typed reads check the Rust type against the dtype.
    says(err_msg(a.to_vec::<f64>()), &["to_vec", "F32", "F64"]);
}

#[test]
fn devices() {
    let a = f32s(&[2]);
    // Where there is no GPU (CI), asking for one is a clear error; an ordinal past the GPUs
    // there are is one everywhere.
    if !tessera::engine::cuda::is_available() {
        says(err_msg(a.to_device(Device::Cuda(0))), &["to_device: device cuda:0 is not available"]);
    }
    assert!(matches!(a.to_device(Device::Cuda(999)), Err(Error::DeviceUnavailable { op: "to_device", device: Device::Cuda(999), .. })));
    assert!(a.to_device(Device::Cpu).unwrap().shares_storage(&a));
    // The mismatch error (reachable once a second device exists) names both devices.
    let e = Error::DeviceMismatch { op: "add", lhs: Device::Cpu, rhs: Device::Cuda(0) };
    says(e.to_string(), &["add", "cpu", "cuda:0", "to_device"]);
    assert_eq!("cuda:3".parse::<Device>(), Ok(Device::Cuda(3)));
    assert_eq!("cuda".parse::<Device>(), Ok(Device::Cuda(0)));
    assert!("tpu".parse::<Device>().unwrap_err().contains("unknown device 'tpu'"));
}

#[test]
fn empty_tensors_where_a_value_is_needed() {
    let e = f32s(&[2, 0]);
    says(err_msg(e.max(&[1], false)), &["max", "cannot reduce an empty axis", "[2, 0]"]);
    says(err_msg(e.min(&[], false)), &["min", "empty"]);
    says(err_msg(e.mean(&[1], true)), &["mean", "empty"]);
    says(err_msg(e.var(&[1], false, false)), &["var", "empty"]);
    says(err_msg(e.logsumexp(&[1], false)), &["logsumexp", "empty"]);
    says(err_msg(e.argmax(1, false)), &["argmax", "axis 1 is empty", "[2, 0]"]);
    says(err_msg(e.argmin(-1, false)), &["argmin", "empty"]);
    says(err_msg(f32s(&[2, 3]).item()), &["item", "exactly one element", "[2, 3]"]);
    says(err_msg(e.item()), &["item", "[2, 0]"]);
    // Sums over nothing are fine.
    assert_eq!(e.sum(&[1], false).unwrap().to_vec::<f32>().unwrap(), [0.0, 0.0]);
}

#[test]
fn shape_overflow() {
    let huge = [usize::MAX, 2];
    let overflow = "the element count of shape [18446744073709551615, 2] overflows usize";
    says(err_msg(Tensor::zeros(&huge, DType::F32)), &[overflow]);
    says(err_msg(Tensor::ones(&huge, DType::U8)), &[overflow]);
    says(err_msg(Tensor::full(&huge, 1.0, DType::F64)), &["full", overflow]);
    says(err_msg(Tensor::from_vec(Vec::<f32>::new(), &huge)), &["from_vec", overflow]);
    says(err_msg(Tensor::eye(1 << 33, DType::F32)), &["eye", "overflows usize"]);
    says(err_msg(f32s(&[2]).reshape(&[isize::MAX, 4])), &["reshape", "overflows usize"]);
    says(err_msg(Generator::new(0).uniform(&huge, 0.0, 1.0, DType::F32)), &["uniform", overflow]);
    says(err_msg(Generator::new(0).normal(&huge, 0.0, 1.0, DType::F32)), &["normal", overflow]);
    says(err_msg(Generator::new(0).bernoulli(&huge, 0.5)), &["bernoulli", overflow]);
    says(err_msg(Generator::new(0).randint(&huge, 0, 2)), &["randint", overflow]);
    assert!(matches!(Tensor::zeros(&huge, DType::F32), Err(Error::ShapeOverflow { .. })));
    // Views allocate nothing, but their shapes must still have a countable element number.
    let one = f32s(&[1, 1]);
    says(err_msg(one.expand(&huge)), &["expand", overflow]);
    let (tall, wide) = (one.expand(&[1 << 40, 1]).unwrap(), one.expand(&[1, 1 << 40]).unwrap());
    says(err_msg(tall.add(&wide)), &["add", "overflows usize"]);
}

#[test]
fn length_mismatch_and_invalid_arguments() {
    says(err_msg(Tensor::from_vec(vec![1.0f32; 5], &[2, 3])), &["from_vec: 5 elements given for shape [2, 3], which holds 6"]);
    assert!(Tensor::from_slice(&[1i64], &[]).is_ok());
    says(err_msg(Tensor::from_slice(&[1i64, 2], &[])), &["from_vec", "2 elements", "shape []", "holds 1"]);
    assert!(matches!(Tensor::from_vec(vec![0u8; 3], &[2]), Err(Error::LengthMismatch { len: 3, expected: 2, .. })));
    says(err_msg(Tensor::arange(0.0, 1.0, 0.0, DType::F32)), &["arange", "non-zero step"]);
    says(err_msg(Tensor::arange(0.0, f64::INFINITY, 1.0, DType::F32)), &["arange", "finite"]);
    says(err_msg(f32s(&[2]).clamp(1.0, 0.0)), &["clamp", "lo 1 exceeds hi 0"]);
    says(err_msg(f32s(&[2]).reshape(&[-1, -1])), &["reshape", "only one dim may be -1"]);
    says(err_msg(f32s(&[2]).reshape(&[-2])), &["reshape", "negative dim -2"]);
    let mut g = Generator::new(0);
    says(err_msg(g.uniform(&[2], 1.0, 0.0, DType::F32)), &["uniform", "low 1 must not exceed high 0"]);
    says(err_msg(g.normal(&[2], 0.0, -1.0, DType::F32)), &["normal", "std must be non-negative"]);
    says(err_msg(g.trunc_normal(&[2], 0.0, 1.0, 2.0, -2.0, DType::F32)), &["trunc_normal", "a < b"]);
    says(err_msg(g.bernoulli(&[2], 1.5)), &["bernoulli", "[0, 1]", "1.5"]);
    says(err_msg(g.randint(&[2], 3, 3)), &["randint", "low < high"]);
}
