//! Integration tests of the server: one binary, one module per area.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod ai_proxy;
mod alerts;
mod audit;
mod budgets;
mod commands;
mod dataplane;
mod enterprise;
mod fair_share;
mod instances;
mod invitations_smtp;
mod limits;
mod management;
mod metrics;
mod oauth;
mod openapi;
mod ops;
mod permissions;
mod requests;
mod routing;
mod security;
mod statements;
