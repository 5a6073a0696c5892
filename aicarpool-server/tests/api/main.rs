//! Integration tests of the server: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod dataplane;
mod management;
