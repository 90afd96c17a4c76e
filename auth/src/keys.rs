//! Token signing keys: created on first start, kept in the database so every replica signs
//! with the same key, rotated without downtime.
//!
//! Rotation publishes before it signs: a new key appears in the JWKS at once but signs only
//! after [`PUBLISH_DELAY`], longer than a registry waits between JWKS refetches on an unknown
//! `kid`, so no registry meets a token whose key it cannot fetch yet. The key it supersedes
//! stays published until the last token it signed has expired.

use std::time::Duration;

use anyhow::Context;
use berth_db::Db;
use berth_db::entity::signing_keys::{self, Column, Entity};
use berth_token::{PublicKey, SigningKey};
use chrono::Utc;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

/// How long past a retired key's last possible token it stays published: the registry's
/// verification leeway.
const LEEWAY: Duration = Duration::from_secs(60);

/// How long a new key is published before it signs by default (registries refetch the JWKS
/// on an unknown `kid` at most every 10 s). `BERTH_KEY_PUBLISH_DELAY` changes it.
pub const PUBLISH_DELAY: Duration = Duration::from_secs(30);

/// The key to sign with now; one is created if none exists.
///
/// The signer is the newest key published for at least `publish_delay`; while none is
/// that old (the first minutes of a new installation) it is the oldest key. Two replicas
/// starting at once may both create a first key: harmless, both are published and every
/// replica picks the same signer.
pub async fn active(db: &Db, publish_delay: Duration) -> anyhow::Result<SigningKey> {
    let rows = live(db).await?;
    if rows.is_empty() {
        return create(db).await;
    }
    let ripe = Utc::now() - chrono::Duration::from_std(publish_delay)?;
    let row = rows
        .iter()
        .rev()
        .find(|r| r.created_at <= ripe)
        .or(rows.first())
        .context("no signing key")?;
    SigningKey::from_pkcs8_pem(&row.private_pem).context("stored signing key is invalid")
}

/// Add a new key: published now, signing after [`PUBLISH_DELAY`]. Returns it.
pub async fn rotate(db: &Db) -> anyhow::Result<SigningKey> {
    let key = create(db).await?;
    tracing::info!(key.kid = key.kid(), "signing key rotated");
    Ok(key)
}

/// Every key a registry must trust now, newest first: keys not yet superseded, and
/// superseded or retired keys whose tokens may still be valid (`ttl` plus leeway).
pub async fn published(
    db: &Db,
    ttl: Duration,
    publish_delay: Duration,
) -> anyhow::Result<Vec<PublicKey>> {
    let now = Utc::now();
    let grace = chrono::Duration::from_std(ttl + LEEWAY)?;
    let delay = chrono::Duration::from_std(publish_delay)?;
    let rows = Entity::find()
        .order_by_asc(Column::Id)
        .all(&db.read)
        .await?;
    let mut keys = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        // A key stops signing when the next one starts, `publish_delay` after its creation.
        let superseded = rows.get(i + 1).map(|next| next.created_at + delay);
        let still_valid =
            |end: Option<chrono::DateTime<Utc>>| end.is_none_or(|at| at + grace > now);
        if still_valid(superseded) && still_valid(row.retired_at) {
            let mut parsed =
                PublicKey::from_pem(&row.public_pem).context("stored public key is invalid")?;
            keys.push(parsed.pop().context("stored public key is empty")?);
        }
    }
    keys.reverse();
    Ok(keys)
}

/// Keys not retired, oldest first.
async fn live(db: &Db) -> anyhow::Result<Vec<signing_keys::Model>> {
    Ok(Entity::find()
        .filter(Column::RetiredAt.is_null())
        .order_by_asc(Column::Id)
        .all(&db.read)
        .await?)
}

async fn create(db: &Db) -> anyhow::Result<SigningKey> {
    let txn = db.begin_write().await?;
    let key = insert(&txn).await?;
    txn.commit().await?;
    tracing::info!(key.kid = key.kid(), "signing key created");
    Ok(key)
}

async fn insert(c: &impl sea_orm::ConnectionTrait) -> anyhow::Result<SigningKey> {
    let key = SigningKey::generate();
    signing_keys::ActiveModel {
        kid: Set(key.kid().to_owned()),
        algorithm: Set("ES256".into()),
        private_pem: Set(key.to_pkcs8_pem()?),
        public_pem: Set(key.public_key().to_pem()),
        created_at: Set(Utc::now()),
        retired_at: Set(None),
        ..Default::default()
    }
    .insert(c)
    .await?;
    Ok(key)
}
