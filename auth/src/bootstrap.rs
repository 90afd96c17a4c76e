//! First start: the `root` admin, with `BERTH_ROOT_PASSWORD` or a generated password printed
//! once (to stdout, never to the log).

use anyhow::Context;
use berth_db::Db;
use berth_db::users::NewUser;
use secrecy::{ExposeSecret, SecretString};

use crate::secrets;

/// The bootstrap admin's username.
pub const ROOT: &str = "root";

/// Create `root` unless it exists. Two replicas starting at once: one insert wins, the
/// other meets the unique username and carries on.
pub async fn ensure_root(db: &Db, password: Option<&SecretString>) -> anyhow::Result<()> {
    if berth_db::access::user_by_login(&db.read, ROOT)
        .await?
        .is_some()
    {
        return Ok(());
    }
    let (password, generated) = match password {
        Some(p) => (p.expose_secret().to_owned(), false),
        None => (secrets::generate(""), true),
    };
    let hash = (
        crate::passwords::hash(password.clone())
            .await
            .context("hashing the root password")?,
        password,
    );
    let txn = db.begin_write().await?;
    let created = berth_db::users::create(
        &txn,
        NewUser {
            username: ROOT,
            email: "root@berth.local",
            name: "Administrator",
            password_hash: Some(hash.0),
            admin: true,
            bot: false,
        },
    )
    .await;
    match created {
        Ok(_) => txn.commit().await?,
        Err(e) if berth_db::is_unique_violation(&e) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(
        user = ROOT,
        generated_password = generated,
        "created the admin user"
    );
    if generated {
        println!("Created the admin user 'root' with password: {}", hash.1);
        println!("(shown once; set BERTH_ROOT_PASSWORD to choose it)");
    }
    Ok(())
}
