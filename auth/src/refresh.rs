//! Registry refresh tokens (Docker's OAuth2 form with `access_type=offline`): a long push
//! renews its JWT without re-sending the secret. A refresh token stands for the login that
//! made it — a password, or a PAT with its scopes — and dies with that PAT, with its user
//! being blocked, or at its own expiry. Deploy and job tokens get none: they are secrets
//! meant for machines that can simply send them again.

use berth_db::access as q;
use berth_db::entity::refresh_tokens;
use chrono::Utc;
use sea_orm::{ActiveModelTrait, Set};

use crate::identity::{Credential, UserCredential, split_scopes};
use crate::jwt::TokenError;
use crate::secrets::{self, REFRESH_PREFIX};
use crate::state::AppState;

/// A new refresh token for `cred` (users only), shown once.
pub async fn create(
    state: &AppState,
    cred: &Credential,
    service: &str,
) -> Result<Option<String>, TokenError> {
    let Credential::User(u) = cred else {
        return Ok(None);
    };
    let token = secrets::generate(REFRESH_PREFIX);
    let now = Utc::now();
    let txn = state.db.begin_write().await?;
    refresh_tokens::ActiveModel {
        user_id: Set(u.user.id),
        token_digest: Set(secrets::digest(&token)),
        service: Set(service.to_owned()),
        expires_at: Set(Some(now + chrono::Duration::from_std(state.refresh_ttl)?)),
        revoked: Set(false),
        personal_access_token_id: Set(u.pat_id),
        scopes: Set(u.scopes.as_ref().map(|s| s.join(",")).unwrap_or_default()),
        created_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(Some(token))
}

/// The credential a refresh token stands for, if it and that credential are still alive and
/// it was issued for `service`.
pub async fn redeem(
    state: &AppState,
    token: &str,
    service: &str,
) -> Result<Option<Credential>, TokenError> {
    let now = Utc::now();
    let digest = secrets::digest(token);
    let Some(row) = q::refresh_token(&state.db.read, &digest).await? else {
        return Ok(None);
    };
    if !secrets::same(&row.token_digest, &digest)
        || row.revoked
        || !secrets::same(&row.service, service)
        || row.expires_at.is_some_and(|at| at <= now)
    {
        return Ok(None);
    }
    let Some(user) = berth_db::users::by_id(&state.db.read, row.user_id)
        .await?
        .filter(|u| u.state == "active")
    else {
        return Ok(None);
    };
    let scopes = match row.personal_access_token_id {
        Some(pat_id) => match berth_db::tokens::pat(&state.db.read, pat_id).await? {
            Some(p) if !p.revoked && p.expires_at.is_none_or(|at| at > now) => {
                Some(split_scopes(&p.scopes))
            }
            _ => return Ok(None),
        },
        None if state.cfg.password_authentication_enabled => None,
        None => return Ok(None),
    };
    Ok(Some(Credential::User(UserCredential {
        user,
        scopes,
        pat_id: row.personal_access_token_id,
    })))
}
