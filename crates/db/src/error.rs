//! The one error type of the database crate. A sea-orm error is classified once, here, into
//! the kinds callers act on differently: a missing row, a unique or foreign-key conflict (a
//! lost race or a duplicate request: never a 500), a transient conflict worth running the
//! whole transaction again (serialization failure, deadlock, SQLite busy), an unreachable
//! database, and everything else.

use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// What went wrong, as callers need to know it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A row the statement needed does not exist.
    NotFound,
    /// A unique constraint refused the write (a duplicate, or a concurrent writer won).
    UniqueConflict,
    /// A foreign key refused the write (the referenced row is gone, or still referenced).
    ForeignKeyConflict,
    /// The transaction lost a race (serialization failure, deadlock, SQLite busy) and may
    /// succeed when run again from the start.
    Retryable,
    /// The database cannot be reached (connection refused or lost, pool exhausted).
    Unavailable,
    /// Anything else: a bug or a broken database; logged and answered as an internal error.
    Other,
}

/// A database error with its kind.
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {source}")]
pub struct Error {
    kind: ErrorKind,
    #[source]
    source: DbErr,
}

impl Error {
    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Is running the transaction again worth it?
    pub fn is_retryable(&self) -> bool {
        self.kind == ErrorKind::Retryable
    }

    /// The underlying sea-orm error (for logs).
    pub fn source_error(&self) -> &DbErr {
        &self.source
    }

    /// An error of `kind` (tests, and callers that detect a kind themselves).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            source: DbErr::Custom(message.into()),
        }
    }
}

impl From<DbErr> for Error {
    fn from(source: DbErr) -> Self {
        Error {
            kind: classify(&source),
            source,
        }
    }
}

/// The kind of a sea-orm error. PostgreSQL reports SQLSTATE codes (23505 unique, 23503
/// foreign key, 40001 serialization, 40P01 deadlock, 08xxx connection); SQLite reports
/// extended result codes that sqlx only partly classifies (`ON DELETE RESTRICT` and busy
/// errors arrive as messages), hence the message checks.
pub fn classify(err: &DbErr) -> ErrorKind {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => return ErrorKind::UniqueConflict,
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => return ErrorKind::ForeignKeyConflict,
        _ => {}
    }
    match err {
        DbErr::RecordNotFound(_) | DbErr::RecordNotUpdated => return ErrorKind::NotFound,
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => return ErrorKind::Unavailable,
        _ => {}
    }
    if let Some(code) = sqlstate(err) {
        match code.as_str() {
            "40001" | "40P01" => return ErrorKind::Retryable,
            "23505" => return ErrorKind::UniqueConflict,
            "23503" => return ErrorKind::ForeignKeyConflict,
            c if c.starts_with("08") || c == "57P01" || c == "57P03" => {
                return ErrorKind::Unavailable;
            }
            _ => {}
        }
    }
    let text = err.to_string();
    if text.contains("database is locked") || text.contains("deadlock") {
        ErrorKind::Retryable
    } else if text.contains("FOREIGN KEY constraint failed") {
        ErrorKind::ForeignKeyConflict
    } else if text.contains("UNIQUE constraint failed") {
        ErrorKind::UniqueConflict
    } else if is_io_failure(err) {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Other
    }
}

/// The SQLSTATE of a database error, when the driver reported one.
fn sqlstate(err: &DbErr) -> Option<String> {
    let runtime = match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => e,
        _ => return None,
    };
    runtime
        .as_database_error()
        .and_then(|d| d.code())
        .map(|c| c.into_owned())
}

/// A connection that broke mid-statement (server restarted, network gone).
fn is_io_failure(err: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match err {
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            matches!(
                e,
                Sqlx::Io(_) | Sqlx::PoolTimedOut | Sqlx::PoolClosed | Sqlx::WorkerCrashed
            )
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_sqlite_errors_classify() {
        let e = |m: &str| DbErr::Custom(m.to_owned());
        assert_eq!(classify(&e("database is locked")), ErrorKind::Retryable);
        assert_eq!(
            classify(&e("FOREIGN KEY constraint failed")),
            ErrorKind::ForeignKeyConflict
        );
        assert_eq!(
            classify(&e("UNIQUE constraint failed: tags.name")),
            ErrorKind::UniqueConflict
        );
        assert_eq!(classify(&e("syntax error")), ErrorKind::Other);
    }

    #[test]
    fn missing_rows_and_connections_classify() {
        assert_eq!(
            classify(&DbErr::RecordNotFound("x".into())),
            ErrorKind::NotFound
        );
        assert_eq!(
            classify(&DbErr::ConnectionAcquire(
                sea_orm::error::ConnAcquireErr::Timeout
            )),
            ErrorKind::Unavailable
        );
    }
}
