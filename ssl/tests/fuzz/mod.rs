//! The fuzz harness: seeded mutations ([`mutate`]) of valid files, run through one target
//! per parser ([`targets`]) by `hostile_inputs.rs`.

pub mod mutate;
pub mod targets;
