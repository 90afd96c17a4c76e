//! A fresh, empty database per test: a SQLite file in a temporary directory, or a new
//! PostgreSQL database on the local server (dropped when the test ends).

use sea_orm::{ConnectionTrait, Database};

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL at `BERTH_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432`).
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    /// Connection URL for `berth_db::connect`.
    pub url: String,
    /// Which backend.
    pub backend: Backend,
    _dir: Option<tempfile::TempDir>,
    pg_name: Option<String>,
}

fn pg_base() -> String {
    std::env::var("BERTH_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

impl TestDb {
    /// Create a fresh database, or `None` (after saying so loudly) when PostgreSQL is
    /// unreachable outside CI.
    pub async fn new(backend: Backend) -> Option<TestDb> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("berth.db").display()
                );
                Some(TestDb {
                    url,
                    backend,
                    _dir: Some(dir),
                    pg_name: None,
                })
            }
            Backend::Postgres => {
                let admin = Database::connect(format!("{}/postgres", pg_base())).await;
                let admin = match admin {
                    Ok(a) => a,
                    Err(e) => {
                        crate::require(&format!("PostgreSQL ({e})"), false);
                        return None;
                    }
                };
                let name = format!("berth_test_{}", uuid::Uuid::new_v4().simple());
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                let _ = admin.close().await;
                Some(TestDb {
                    url: format!("{}/{name}", pg_base()),
                    backend,
                    _dir: None,
                    pg_name: Some(name),
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs inside the test's runtime; use a thread with its own runtime to finish.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(admin) = Database::connect(format!("{}/postgres", pg_base())).await {
                        let _ = admin
                            .execute_unprepared(&format!(
                                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                            ))
                            .await;
                    }
                });
            }
        })
        .join();
    }
}

/// Define `mod <name> { sqlite, postgres }` tests that call `async fn <name>(db: TestDb)`.
#[macro_export]
macro_rules! db_test {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                if let Some(db) = $crate::TestDb::new($crate::Backend::Sqlite).await {
                    super::$name(db).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                if let Some(db) = $crate::TestDb::new($crate::Backend::Postgres).await {
                    super::$name(db).await;
                }
            }
        }
    };
}
