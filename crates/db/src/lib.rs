//! Berth's database: connecting (SQLite or PostgreSQL), migrating, the sea-orm entities and
//! the query functions, grouped by aggregate. Queries take `&impl ConnectionTrait` so the
//! service layer decides where transactions begin and end.

pub mod access;
pub mod background_jobs;
pub mod blobs;
pub mod cleanup_plan;
pub mod consistency;
pub mod entity;
mod error;
pub mod expiration_policies;
pub mod gc;
pub mod gc_review;
pub mod jobs;
mod lease;
pub mod liveness;
pub mod manifests;
pub mod members;
pub mod namespaces;
pub mod project_admin;
pub mod projects;
pub mod registry_deletions;
pub mod registry_read;
pub mod repositories;
pub mod repository_cleanups;
pub mod settings;
pub mod tag_listing;
pub mod tag_rules;
pub mod tags;
pub mod tokens;
pub mod uploads;
pub mod usage;
pub mod usage_walk;
pub mod users;

use std::time::Duration;

use berth_migrations::MigratorTrait;
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseBackend, DatabaseConnection,
    DatabaseTransaction, DbErr, Statement, TransactionTrait,
};

pub use error::{Error, ErrorKind, classify};
pub use sea_orm;

/// The registry's two handles on one database.
///
/// SQLite allows one writer at a time and fails (rather than waits) when a transaction that
/// has read tries to upgrade to a write while another connection writes. Sending every
/// write transaction through a one-connection pool serialises writers inside a process, so
/// that never happens; readers keep their own pool and see WAL snapshots concurrently.
/// On PostgreSQL both handles are the same pool.
#[derive(Clone, Debug)]
pub struct Db {
    /// For reads outside transactions.
    pub read: DatabaseConnection,
    /// For write transactions.
    pub write: DatabaseConnection,
}

impl Db {
    /// Which SQL dialect this is.
    pub fn backend(&self) -> DatabaseBackend {
        self.read.get_database_backend()
    }

    /// Begin a write transaction.
    ///
    /// On SQLite the transaction's first statement is a write to a one-row table, so it
    /// takes the database's write lock at once, waiting through the busy timeout for other
    /// writers (other processes included). A transaction that read first would instead fail
    /// at once when it tried to write after another process committed (SQLite cannot
    /// upgrade a stale read snapshot) — the effect of `BEGIN IMMEDIATE`, which sea-orm does
    /// not expose.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        let txn = self.write.begin().await?;
        if self.backend() == DatabaseBackend::Sqlite {
            txn.execute_unprepared("UPDATE berth_write_lock SET id = id")
                .await?;
        }
        Ok(txn)
    }

    /// Check the database answers (readiness probe).
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.read.ping().await
    }
}

/// SQLite only: the table whose one row write transactions touch first (see
/// [`Db::begin_write`]). Outside the migrations because it is how migrations take turns.
const WRITE_LOCK_TABLE: &str =
    "CREATE TABLE IF NOT EXISTS berth_write_lock (id INTEGER PRIMARY KEY)";

/// Connect to `url` (`sqlite://…` or `postgres://…`).
pub async fn connect(url: &str) -> Result<Db, DbErr> {
    if url.starts_with("sqlite:") {
        create_sqlite_parent(url);
        // Several processes opening a new database file at once can meet "database is
        // locked" while one of them switches it to WAL, which no busy timeout covers: retry.
        let mut attempt = 0;
        loop {
            match connect_sqlite(url).await {
                Err(e) if is_retryable(&e) && attempt < 20 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(25 * attempt)).await;
                }
                other => return other,
            }
        }
    } else {
        let pool = Database::connect(options(url, 16)).await?;
        Ok(Db {
            read: pool.clone(),
            write: pool,
        })
    }
}

async fn connect_sqlite(url: &str) -> Result<Db, DbErr> {
    let read = Database::connect(options(url, 8)).await?;
    // WAL is a property of the database file: set once, every connection sees it.
    read.execute_unprepared("PRAGMA journal_mode=WAL").await?;
    let write = Database::connect(options(url, 1)).await?;
    write.execute_unprepared(WRITE_LOCK_TABLE).await?;
    Ok(Db { read, write })
}

fn options(url: &str, max: u32) -> ConnectOptions {
    let mut o = ConnectOptions::new(url.to_owned());
    o.max_connections(max)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false);
    o.map_sqlx_sqlite_opts(|s| {
        s.busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
    });
    o
}

/// `sqlite://data/berth.db?mode=rwc` needs `data/` to exist.
fn create_sqlite_parent(url: &str) {
    let path = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:")
        .split('?')
        .next()
        .unwrap_or("");
    if path.is_empty() || path == ":memory:" {
        return;
    }
    if let Some(parent) = std::path::Path::new(path).parent() {
        let _ = std::fs::create_dir_all(parent);
    }
}

/// Apply pending migrations. Several processes may start at once: on PostgreSQL an advisory
/// lock makes them take turns; on SQLite the database's write lock does.
pub async fn migrate(db: &Db) -> Result<(), DbErr> {
    const LOCK_KEY: i64 = 0x0062_6572_7468; // "berth"
    let conn = &db.write;
    if conn.get_database_backend() == DatabaseBackend::Postgres {
        // Session-level lock on a dedicated connection would be cleaner; the pool may hand
        // unlock a different connection, so use a transaction-scoped lock instead.
        let txn = sea_orm::TransactionTrait::begin(conn).await?;
        txn.execute(Statement::from_string(
            DatabaseBackend::Postgres,
            format!("SELECT pg_advisory_xact_lock({LOCK_KEY})"),
        ))
        .await?;
        berth_migrations::Migrator::up(&txn, None).await?;
        txn.commit().await
    } else {
        // SQLite: a transaction whose first statement is a write takes the database's write
        // lock (waiting through the busy timeout), so concurrent starters run one at a time
        // and each sees the others' recorded versions.
        conn.execute_unprepared(WRITE_LOCK_TABLE).await?;
        let txn = sea_orm::TransactionTrait::begin(conn).await?;
        txn.execute_unprepared("INSERT OR REPLACE INTO berth_write_lock (id) VALUES (1)")
            .await?;
        berth_migrations::Migrator::up(&txn, None).await?;
        txn.commit().await
    }
}

/// Is this error a transient conflict worth retrying (SQLite busy, PostgreSQL serialization
/// failure or deadlock)?
pub fn is_retryable(err: &DbErr) -> bool {
    classify(err) == ErrorKind::Retryable
}

/// Is this a unique-constraint violation?
pub fn is_unique_violation(err: &DbErr) -> bool {
    classify(err) == ErrorKind::UniqueConflict
}

/// Is this a foreign-key violation?
pub fn is_fk_violation(err: &DbErr) -> bool {
    classify(err) == ErrorKind::ForeignKeyConflict
}
