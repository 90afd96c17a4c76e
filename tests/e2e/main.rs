//! End-to-end tests: the real `berth-registry` binary, a real database (SQLite and
//! PostgreSQL), real clients. One module per scenario.

mod stack;
mod support;

mod api;
mod auth;
mod auth_keys;
mod clients;
mod concurrency;
mod credentials;
mod expiration_policy;
mod immutable_tags;
mod log_secrets;
mod matrix;
mod podman;
mod registry_api;
mod resume;
mod tag_delete_api;
mod tokens;
mod usage_facts;
