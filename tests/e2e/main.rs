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
mod log_secrets;
mod matrix;
mod podman;
mod resume;
mod tokens;
