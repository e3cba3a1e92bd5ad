//! Seeded mutations of a file's bytes: the generic ones of mutation fuzzers (bit flips,
//! interesting integers, cuts, repeats) plus two that hit these formats' weak spots —
//! header fields replaced by extreme big- or little-endian integers, and decimal numbers
//! in text replaced by extreme ones. Positions favour the first kilobytes, where every
//! format keeps its header.

/// xorshift64*: small, fast and the same on every platform, so a seed names one input.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const INTERESTING_U32: [u32; 10] = [0, 1, 0x7f, 0xff, 0x8000, 0xffff, 0x10000, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff];
const INTERESTING_TEXT: [&str; 12] =
    ["-1", "0", "1", "4294967296", "1000000", "9223372036854775807", "18446744073709551615", "1e308", "-inf", "nan", "0.5", "\"x\""];

/// A position in `data`, in its first 4 KiB half of the time.
fn position(rng: &mut Rng, len: usize) -> usize {
    if rng.below(2) == 0 {
        rng.below(len.min(4096))
    } else {
        rng.below(len)
    }
}

/// One to four mutations of `seed`.
pub fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut data = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        mutate_once(&mut data, rng);
    }
    data
}

fn mutate_once(data: &mut Vec<u8>, rng: &mut Rng) {
    let len = data.len();
    match rng.below(9) {
        0 if len > 0 => {
            let i = position(rng, len);
            data[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = position(rng, len);
            data[i] = [0, 0xff, 0x7f, 0x80, b'0', b'9'][rng.below(6)];
        }
        2 if len >= 4 => {
            let i = position(rng, len - 3);
            let v = INTERESTING_U32[rng.below(INTERESTING_U32.len())];
            let bytes = if rng.below(2) == 0 { v.to_be_bytes() } else { v.to_le_bytes() };
            data[i..i + 4].copy_from_slice(&bytes);
        }
        3 => data.truncate(rng.below(len + 1)),
        4 if len > 0 => {
            let start = position(rng, len);
            let end = (start + 1 + rng.below(64)).min(len);
            data.drain(start..end);
        }
        5 => {
            let at = position(rng, len + 1);
            let junk: Vec<u8> = (0..1 + rng.below(16)).map(|_| rng.next() as u8).collect();
            data.splice(at..at, junk);
        }
        // The whole input again: for gzip, a second member; for records, twice as many.
        6 => data.extend_from_within(..),
        7 if len > 0 => {
            let start = position(rng, len);
            let end = (start + 1 + rng.below(256)).min(len);
            data.extend_from_within(start..end);
        }
        _ => replace_number(data, rng),
    }
}

/// Replaces one run of ASCII digits (a number in a TOML or JSON text) with an extreme value.
fn replace_number(data: &mut Vec<u8>, rng: &mut Rng) {
    let runs: Vec<(usize, usize)> = {
        let mut runs = Vec::new();
        let mut i = 0;
        while i < data.len() {
            if data[i].is_ascii_digit() {
                let start = i;
                while i < data.len() && (data[i].is_ascii_digit() || data[i] == b'.') {
                    i += 1;
                }
                runs.push((start, i));
            }
            i += 1;
        }
        runs
    };
    if runs.is_empty() {
        return;
    }
    let (start, end) = runs[rng.below(runs.len())];
    let with = INTERESTING_TEXT[rng.below(INTERESTING_TEXT.len())];
    data.splice(start..end, with.bytes());
}
