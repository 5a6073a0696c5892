//! The outbound guard: no upstream call reaches an address it denies.
