//! Nobody is added to an enterprise, department or group without accepting.
