//! The subcommands' flags and the `run` command (the binary's own modules).

pub mod args;
pub mod docs;
pub mod records;
pub mod run;
pub mod send_test;
