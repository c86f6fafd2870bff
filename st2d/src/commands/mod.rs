//! One module per `st2d` subcommand.

pub mod bench;
pub mod bench_serve;
pub mod bench_webhooks;
pub mod bench_workflow;
pub mod expr;
pub mod pack;
pub mod rule;
pub mod store;
pub mod user;
pub mod workflow;
