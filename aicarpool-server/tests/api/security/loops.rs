//! A gateway that points at itself serves one hop, then refuses.
