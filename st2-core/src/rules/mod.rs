//! The rules engine: criteria operators with StackStorm's semantics, criteria evaluation,
//! matching trigger instances to rules, and enforcement.

pub mod criteria;
pub mod enforce;
pub mod matcher;
pub mod operators;

use std::sync::OnceLock;

use crate::expr::rhai::{Rhai, RhaiLimits};

/// A Rhai engine with the default limits, for compiling `rhai` criteria where no engine is
/// configured (the loader).
pub fn default_rhai() -> &'static Rhai {
    static RHAI: OnceLock<Rhai> = OnceLock::new();
    RHAI.get_or_init(|| Rhai::new(RhaiLimits::default()))
}
