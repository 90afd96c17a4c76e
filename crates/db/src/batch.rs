//! Several write statements sent to the database in one round trip.
//!
//! On SQLite every statement is a hand-off to the connection's worker thread and back, and
//! the single writer connection is held for the whole transaction, so a transaction's
//! round trips bound how many pushes per second the registry takes. Writes whose values are
//! all known up front are therefore rendered (values inlined and escaped by sea-query) and
//! executed together, inside the caller's transaction, so a failure still rolls back all.

use sea_orm::sea_query::{PostgresQueryBuilder, QueryStatementWriter, SqliteQueryBuilder};
use sea_orm::{ConnectionTrait, DbBackend, DbErr};

/// Statements to run together.
pub struct Batch {
    backend: DbBackend,
    sql: Vec<String>,
}

impl Batch {
    /// An empty batch for `c`'s dialect.
    pub fn new(c: &impl ConnectionTrait) -> Self {
        Batch {
            backend: c.get_database_backend(),
            sql: Vec::new(),
        }
    }

    /// Add a statement.
    pub fn push(&mut self, stmt: &impl QueryStatementWriter) {
        self.sql.push(match self.backend {
            DbBackend::Postgres => stmt.to_string(PostgresQueryBuilder),
            _ => stmt.to_string(SqliteQueryBuilder),
        });
    }

    /// Run every statement, in order, in one round trip.
    pub async fn run(self, c: &impl ConnectionTrait) -> Result<(), DbErr> {
        if self.sql.is_empty() {
            return Ok(());
        }
        c.execute_unprepared(&self.sql.join(";\n")).await?;
        Ok(())
    }
}
