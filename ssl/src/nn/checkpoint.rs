//! Checkpoints in the safetensors format: a model's parameters and buffers under their
//! state-dict names (so `safetensors.torch.load_file` + `load_state_dict(strict=True)` reads
//! them in PyTorch), and separately an optimizer's state and step count.
//!
//! Saving is atomic: the bytes go to a temporary file beside the target (`.{name}.tmp`),
//! which is flushed to disk and then renamed over the target, so a crash or error while
//! saving leaves the previous checkpoint intact. Loading checks every name, shape and dtype
//! before changing anything.

use super::error::{MismatchReport, NnError, NnResult};
use super::module::{Entry, Module};
use super::optim::{describe, Optim};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tessera_engine::half::{bf16, f16};
use tessera_engine::{DType, Tensor};

/// Tensors with their state-dict names, in file or visit order.
pub type NamedTensors = Vec<(String, Tensor)>;

/// One tensor's little-endian bytes, ready for `safetensors::serialize`.
struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn le_bytes<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * N);
    v.iter().for_each(|&x| out.extend_from_slice(&f(x)));
    out
}

fn to_raw(t: &Tensor) -> NnResult<Raw> {
    let (dtype, bytes) = match t.dtype() {
        DType::F32 => (Dtype::F32, le_bytes(&t.to_vec::<f32>()?, f32::to_le_bytes)),
        DType::F64 => (Dtype::F64, le_bytes(&t.to_vec::<f64>()?, f64::to_le_bytes)),
        DType::I64 => (Dtype::I64, le_bytes(&t.to_vec::<i64>()?, i64::to_le_bytes)),
        DType::U8 => (Dtype::U8, t.to_vec::<u8>()?),
        DType::BF16 => (Dtype::BF16, le_bytes(&t.to_vec::<bf16>()?, bf16::to_le_bytes)),
        DType::F16 => (Dtype::F16, le_bytes(&t.to_vec::<f16>()?, f16::to_le_bytes)),
    };
    Ok(Raw { dtype, shape: t.shape().to_vec(), bytes })
}

fn from_le<T, const N: usize>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes.chunks_exact(N).map(|c| f(c.try_into().expect("chunks_exact yields N bytes"))).collect()
}

fn from_raw(path: &Path, name: &str, dtype: Dtype, shape: &[usize], bytes: &[u8]) -> NnResult<Tensor> {
    let t = match dtype {
        Dtype::F32 => Tensor::from_vec(from_le(bytes, f32::from_le_bytes), shape),
        Dtype::F64 => Tensor::from_vec(from_le(bytes, f64::from_le_bytes), shape),
        Dtype::I64 => Tensor::from_vec(from_le(bytes, i64::from_le_bytes), shape),
        Dtype::U8 => Tensor::from_vec(bytes.to_vec(), shape),
        Dtype::BF16 => Tensor::from_vec(from_le(bytes, bf16::from_le_bytes), shape),
        Dtype::F16 => Tensor::from_vec(from_le(bytes, f16::from_le_bytes), shape),
        other => {
            return Err(NnError::Format {
                path: path.into(),
                msg: format!("tensor {name:?} has dtype {other:?}; tessera reads F32, F64, BF16, F16, I64 and U8"),
            })
        }
    };
    t.map_err(|e| NnError::Format { path: path.into(), msg: format!("tensor {name:?}: {e}") })
}

/// The temporary file a save writes before renaming it over `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the directory).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> NnResult<()> {
    let tmp = temp_path(path);
    let io = |source| NnError::Io { path: path.to_path_buf(), source };
    let written = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp); // best effort: the target itself is untouched
        return Err(io(e));
    }
    // Make the rename itself durable; not every platform can open a directory for this.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Saves named tensors (names unique) with optional string metadata, atomically.
pub fn save_tensors(path: impl AsRef<Path>, tensors: &[(String, Tensor)], metadata: Option<HashMap<String, String>>) -> NnResult<()> {
    let path = path.as_ref();
    let raws: Vec<(String, Raw)> = tensors.iter().map(|(n, t)| Ok((n.clone(), to_raw(t)?))).collect::<NnResult<_>>()?;
    let mut seen = std::collections::HashSet::new();
    if let Some((dup, _)) = raws.iter().find(|(n, _)| !seen.insert(n.as_str())) {
        return Err(NnError::Invalid(format!("{}: tensor name {dup:?} appears twice", path.display())));
    }
    let format = |msg: String| NnError::Format { path: path.into(), msg };
    let bytes = safetensors::serialize(raws.iter().map(|(n, r)| (n.as_str(), r)), &metadata).map_err(|e| format(e.to_string()))?;
    write_atomic(path, &canonical_header(bytes).map_err(format)?)
}

/// The file with its header's metadata in key order. `safetensors::serialize` writes the
/// metadata map in its hash order, which changes from process to process, so two runs that
/// saved the same tensors and metadata wrote different bytes. The header is the same JSON
/// with its keys sorted: the same tokens, so the same length, and the tensors' offsets do
/// not move.
fn canonical_header(mut bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    let len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize).ok_or("no header")?;
    let header = bytes.get(8..8 + len).ok_or("a header past the end")?;
    let text = std::str::from_utf8(header).map_err(|e| e.to_string())?.trim_end_matches(' ');
    // Every entry of a safetensors header is an object (`__metadata__` and each tensor's
    // info), so two levels of BTreeMap sort all of it, whether or not serde_json's own map
    // keeps insertion order (its `preserve_order` feature).
    use std::collections::BTreeMap;
    let sorted: BTreeMap<String, BTreeMap<String, serde_json::Value>> = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let canonical = serde_json::to_string(&sorted).map_err(|e| e.to_string())?;
    if canonical.len() != text.len() {
        // Not the compact JSON this function expects: keep the bytes as written.
        return Ok(bytes);
    }
    bytes[8..8 + canonical.len()].copy_from_slice(canonical.as_bytes());
    Ok(bytes)
}

/// Reads every tensor of a safetensors file (sorted by name) and its metadata.
pub fn load_tensors(path: impl AsRef<Path>) -> NnResult<(NamedTensors, HashMap<String, String>)> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| NnError::Io { path: path.into(), source })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| NnError::Format { path: path.into(), msg: e.to_string() })?;
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| NnError::Format { path: path.into(), msg: e.to_string() })?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let t = from_raw(path, &name, view.dtype(), view.shape(), view.data())?;
        out.push((name, t));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((out, meta.metadata().clone().unwrap_or_default()))
}

/// Saves a model's state dict (parameters and buffers) to `path`, atomically.
pub fn save_model(path: impl AsRef<Path>, model: &dyn Module) -> NnResult<()> {
    let meta = HashMap::from([("format".to_string(), "pt".to_string())]);
    save_tensors(path, &model.state_dict(), Some(meta))
}

/// Loads a checkpoint written by [`save_model`] (or by `safetensors.torch.save_file` of a
/// PyTorch state dict with the same names) into `model`. Strict: a missing, unexpected or
/// misshapen tensor is an error listing all of them, and the model is left unchanged.
pub fn load_model(path: impl AsRef<Path>, model: &dyn Module) -> NnResult<()> {
    load_model_prefixed(path, model, "")
}

/// The tensors named `{prefix}{name}`, renamed `{name}`; the others are dropped.
pub fn with_prefix_stripped(tensors: &[(String, Tensor)], prefix: &str) -> NamedTensors {
    tensors.iter().filter_map(|(n, t)| n.strip_prefix(prefix).map(|s| (s.to_string(), t.clone()))).collect()
}

/// Like [`load_model`] for the tensors named `{prefix}{name}` (strict among those), ignoring
/// all others: loads `encoder.`'s weights out of a whole SSL model's checkpoint.
pub fn load_model_prefixed(path: impl AsRef<Path>, model: &dyn Module, prefix: &str) -> NnResult<()> {
    let path = path.as_ref();
    let (tensors, _) = load_tensors(path)?;
    load_state_dict(model, &with_prefix_stripped(&tensors, prefix), true).map_err(|report| NnError::Mismatch {
        path: path.into(),
        what: "model",
        report,
    })
}

/// Sets a model's parameters and buffers from named tensors. Float tensors convert to the
/// model's float dtype; anything else must match exactly. With `strict`, names the model
/// does not have are reported as unexpected. Nothing changes unless everything matches.
pub fn load_state_dict(model: &dyn Module, tensors: &[(String, Tensor)], strict: bool) -> Result<(), MismatchReport> {
    let mut given: HashMap<&str, &Tensor> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut report = MismatchReport::default();
    let mut plan: Vec<(String, Tensor)> = Vec::new();
    for (name, want) in model.state_dict() {
        match given.remove(name.as_str()) {
            None => report.missing.push((name, want.shape().to_vec())),
            Some(t) => {
                let dtype_ok = t.dtype() == want.dtype() || (t.dtype().is_float() && want.dtype().is_float());
                match (t.shape() == want.shape() && dtype_ok).then(|| t.to_dtype(want.dtype())) {
                    Some(Ok(t)) => plan.push((name, t)),
                    _ => report.misshapen.push((name, describe(want.dtype(), want.shape()), describe(t.dtype(), t.shape()))),
                }
            }
        }
    }
    if strict {
        report.unexpected = given.iter().map(|(n, t)| (n.to_string(), t.shape().to_vec())).collect();
        report.unexpected.sort();
    }
    if !report.is_empty() {
        return Err(report);
    }
    let values: HashMap<String, Tensor> = plan.into_iter().collect();
    model.visit("", &mut |name, e| {
        // Shapes and dtypes were checked above, so these sets cannot fail.
        let _ = match (e, values.get(name)) {
            // Loaded tensors join the device the model lives on.
            (Entry::Param(p), Some(v)) => v.to_device(p.value().device()).map_err(Into::into).and_then(|v| p.var().set_value(v)),
            (Entry::Buffer(b), Some(v)) => v.to_device(b.get().device()).map_err(Into::into).and_then(|v| b.set(v)),
            _ => Ok(()),
        };
    });
    Ok(())
}

/// Saves an optimizer's state and step count (see [`Optim::state_tensors`]), atomically.
pub fn save_optimizer(path: impl AsRef<Path>, opt: &dyn Optim) -> NnResult<()> {
    let meta = HashMap::from([("step".to_string(), opt.step_count().to_string())]);
    save_tensors(path, &opt.state_tensors(), Some(meta))
}

/// Restores what [`save_optimizer`] wrote into an optimizer over the same named parameters.
pub fn load_optimizer(path: impl AsRef<Path>, opt: &mut dyn Optim) -> NnResult<()> {
    let path = path.as_ref();
    let (tensors, _) = load_tensors(path)?;
    opt.load_state_tensors(&tensors).map_err(|report| NnError::Mismatch { path: path.into(), what: "optimizer", report })
}
