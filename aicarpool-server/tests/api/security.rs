//! The security suite: every hole a hostile tenant, admin, member or
//! network peer could use, replayed against the server. Each test fails
//! when its guard is taken away.

mod at_rest;
mod consent;
mod credentials;
mod input;
mod loops;
mod memory;
mod outbound;
mod setup;
mod signin;
