//! Writes NumPy `.npy` files (format 1.0, little-endian f32), readable by `numpy.load`.

use std::path::Path;

/// Serializes a row-major f32 array of `shape`.
pub fn npy_bytes(data: &[f32], shape: &[usize]) -> Vec<u8> {
    let dims = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // Magic (6) + version (2) + header length (2) + header, padded with spaces and a newline
    // to a multiple of 64 bytes.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Writes an `.npy` file atomically; an existing file is replaced only with `force`.
pub fn write_npy(path: &Path, data: &[f32], shape: &[usize], force: bool) -> crate::Result<()> {
    if path.exists() && !force {
        return Err(format!("{} already exists; pass --force to replace it", path.display()).into());
    }
    crate::train::write_atomic(path, &npy_bytes(data, shape))
}
