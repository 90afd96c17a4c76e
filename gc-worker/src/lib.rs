//! berth-gc: the online garbage collector (SPEC 6.1), scheduled cleanup policies (6.2),
//! storage usage (6.3) and the offline consistency check.

pub mod check;
pub mod cleanup;
pub mod config;
pub mod jobs;
pub mod run;
pub mod usage;
pub mod worker;

pub use config::Config;
