//! Sign-in and registration throttling, and password strength.
