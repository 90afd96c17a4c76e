//! berth-gc: the online garbage collector, scheduled cleanup policies, storage usage and
//! the offline consistency check.

pub mod check;
pub mod cleanup;
pub mod config;
pub mod jobs;
pub mod run;
pub mod usage;
pub mod worker;

pub use config::Config;
