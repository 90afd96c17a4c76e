//! sea-orm entities, one module per table.

pub mod blobs;
pub mod gc_blob_review_queue;
pub mod gc_manifest_review_queue;
pub mod layers;
pub mod manifest_references;
pub mod manifests;
pub mod repositories;
pub mod repository_blobs;
pub mod tags;
pub mod uploads;
