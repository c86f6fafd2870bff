//! st2-core: the StackStorm-compatible automation engine as a library.
//!
//! This crate reads StackStorm packs exactly as StackStorm does ([`loader`]), holds what they
//! define in a [`Catalog`], and (in later modules) evaluates expressions,
//! matches rules and runs the pipeline. It has no HTTP server and no CLI; the `st2d` crate wires
//! it into a daemon.
//!
//! ```no_run
//! use st2_core::loader::{LoadOptions, load};
//!
//! let report = load(&LoadOptions::default().packs_dir("/opt/stackstorm/packs"));
//! for d in &report.diagnostics {
//!     eprintln!("{d}");
//! }
//! let echo = report.catalog.action("core.echo").expect("built in");
//! assert_eq!(echo.runner_type, "local-shell-cmd");
//! ```

#![warn(missing_docs)]

pub mod alias;
pub mod auth;
pub mod builtin;
pub mod catalog;
pub mod clock;
pub mod crypto;
pub mod datastore;
pub mod diagnostic;
pub mod engine;
pub mod expr;
pub mod loader;
pub mod model;
pub mod reference;
pub mod rules;
pub mod runner;
pub mod schema;
pub mod sensor;
pub mod store;
pub mod timers;
pub mod yaml;

pub use catalog::Catalog;
pub use diagnostic::{Diagnostic, Severity};
pub use engine::{Engine, EngineBuilder, EngineError, EngineSettings};
pub use loader::{LoadOptions, LoadReport, load};
