//! The push server of the seeds.
pub mod command;
