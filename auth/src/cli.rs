//! Operator commands that work without the API: create a user, create an access token
//! (`berth-auth token create --user <name> --scopes <a,b> [--expires-at <date>]`,
//! which prints the secret alone on stdout).

use anyhow::{Context, bail};
use berth_db::Db;
use berth_db::users::NewUser;
use chrono::NaiveDate;

use crate::api::personal_access_tokens::SCOPES as PAT_SCOPES;

/// Create a personal access token for `username`; returns the secret.
pub async fn create_token(
    db: &Db,
    username: &str,
    scopes: &str,
    expires_at: Option<&str>,
    name: &str,
) -> anyhow::Result<String> {
    let user = berth_db::access::user_by_login(&db.read, username)
        .await?
        .with_context(|| format!("no user {username:?}"))?;
    let scopes: Vec<&str> = scopes
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if scopes.is_empty() {
        bail!("--scopes needs at least one of {}", PAT_SCOPES.join(", "));
    }
    if let Some(bad) = scopes.iter().find(|s| !PAT_SCOPES.contains(s)) {
        bail!("unknown scope {bad:?}; use {}", PAT_SCOPES.join(", "));
    }
    // GitLab: a token expires at midnight UTC at the start of its expiry date.
    let expires_at = match expires_at {
        Some(d) => Some(
            NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .with_context(|| format!("--expires-at {d:?} is not YYYY-MM-DD"))?
                .and_hms_opt(0, 0, 0)
                .context("date")?
                .and_utc(),
        ),
        None => None,
    };
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let txn = db.begin_write().await?;
    let (_, token) =
        crate::api::personal_access_tokens::issue(&txn, user.id, name, &scopes, expires_at)
            .await
            .map_err(|e| anyhow::anyhow!("creating the token: {e}"))?;
    txn.commit().await?;
    Ok(token)
}

/// Create a user with a password.
pub async fn create_user(
    db: &Db,
    username: &str,
    email: &str,
    password: &str,
    admin: bool,
) -> anyhow::Result<i64> {
    if password.len() < 8 {
        bail!("the password must have at least 8 characters");
    }
    let hash = crate::passwords::hash(password.to_owned()).await?;
    let txn = db.begin_write().await?;
    let user = berth_db::users::create(
        &txn,
        NewUser {
            username,
            email,
            name: username,
            password_hash: Some(hash),
            admin,
            bot: false,
        },
    )
    .await;
    let user = match user {
        Ok(u) => u,
        Err(e) if berth_db::is_unique_violation(&e) => {
            bail!("username or email already taken")
        }
        Err(e) => return Err(e.into()),
    };
    txn.commit().await?;
    Ok(user.id)
}
