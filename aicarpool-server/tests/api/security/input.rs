//! Hostile client input: no panic, no unbounded strings, no internals in errors.
