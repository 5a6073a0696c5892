//! Upstream credentials stay tied to where they go, and never show.
