//! One module per `st2d` subcommand.

pub mod pack;
