//! st2-workflow: the Orquesta-compatible workflow language for st2-core.
//!
//! So far: Orquesta's expression functions ([`functions`]), which the YAQL and Jinja engines
//! of st2-core call through their function table (plus native YAQL versions of the ones that
//! read the context, [`orquesta_yaql`]), and Orquesta's expression evaluation
//! ([`expression`]).

#![warn(missing_docs)]

pub mod expression;
pub mod functions;

pub use functions::{
    orquesta_functions, orquesta_yaql, register_orquesta_functions, with_native_orquesta_functions,
};
