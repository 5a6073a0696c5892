//! Runnable examples live next to this crate manifest; see `examples/*.rs`.
