//! Files, proxy passwords and sessions at rest.
