//! The registry's services: the logic behind the handlers, owning transactions.

pub mod blobs;
pub mod body;
pub mod cache;
pub mod manifests;
pub mod retry;
pub mod uploads;
pub mod usage;
