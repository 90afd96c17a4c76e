//! The repository under test, written straight through `berth_db` in a few transactions:
//! realistic OCI image manifests (a config, a base layer they all share, two of their own)
//! and many tags over them, with push and pull times spread so that name order, push order
//! and pull order all differ, and a third of the tags never pulled.

use anyhow::Context;
use berth_core::Digest;
use berth_db::entity::tags;
use berth_db::manifests::{NewLayer, NewManifest};
use chrono::{DateTime, Duration, Utc};
use sea_orm::{EntityTrait, Set};
use serde_json::json;

/// Tags per manifest (as release pipelines tag one build several ways).
const TAGS_PER_MANIFEST: usize = 10;
/// Rows per multi-row tag insert.
const TAG_CHUNK: usize = 1_000;

/// The `i`th tag name: half release versions, half build tags.
pub fn tag_name(i: usize) -> String {
    if i.is_multiple_of(2) {
        format!("v{}.{}.{}", i / 2_000, (i / 20) % 100, (i / 2) % 10)
    } else {
        format!(
            "build-{:05}-{:08x}",
            i,
            (i as u64).wrapping_mul(2_654_435_761) as u32
        )
    }
}

fn layer(kind: &str, seed: usize, size: usize) -> (String, NewLayer) {
    let digest = Digest::sha256(format!("{kind}-{seed}").as_bytes()).to_string();
    let layer = NewLayer {
        digest: digest.clone(),
        media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
        size: size as i64,
    };
    (digest, layer)
}

/// Insert repository `name` with `count` tags; returns its id.
pub async fn populate(database_url: &str, name: &str, count: usize) -> anyhow::Result<i64> {
    let db = berth_db::connect(database_url)
        .await
        .context("connecting to the bench database")?;
    let now = Utc::now();
    let txn = db.begin_write().await?;
    let repo = berth_db::repositories::get_or_create(&txn, name, now).await?;
    let (base_digest, base) = layer("base", 0, 30_000_000);
    berth_db::blobs::insert(&txn, &base_digest, base.size, now).await?;
    berth_db::blobs::link(&txn, repo.id, &base_digest, now).await?;
    let manifests = count.div_ceil(TAGS_PER_MANIFEST);
    let mut manifest_ids = Vec::with_capacity(manifests);
    for m in 0..manifests {
        let config_bytes = format!("{{\"architecture\":\"amd64\",\"os\":\"linux\",\"build\":{m}}}");
        let config = Digest::sha256(config_bytes.as_bytes()).to_string();
        let own: Vec<(String, NewLayer)> = (0..2)
            .map(|k| layer("app", m * 2 + k, 1_000_000 + m * 10 + k))
            .collect();
        berth_db::blobs::insert(&txn, &config, config_bytes.len() as i64, now).await?;
        for (d, l) in &own {
            berth_db::blobs::insert(&txn, d, l.size, now).await?;
        }
        let layers: Vec<NewLayer> = std::iter::once(base.clone())
            .chain(own.into_iter().map(|(_, l)| l))
            .collect();
        let payload = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_bytes.len()},
            "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size})).collect::<Vec<_>>(),
        }))?;
        let new = NewManifest {
            repository_id: repo.id,
            digest: Digest::sha256(&payload).to_string(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            artifact_type: None,
            subject_digest: None,
            config_digest: Some(config),
            payload,
        };
        manifest_ids.push(berth_db::manifests::insert(&txn, new, layers, Vec::new(), now).await?);
    }
    txn.commit().await?;

    let epoch: DateTime<Utc> = now - Duration::days(400);
    let rows: Vec<tags::ActiveModel> = (0..count)
        .map(|i| {
            // Pushed in an order unrelated to the name; a third never pulled.
            let pushed = epoch + Duration::minutes(((i * 7_919) % count) as i64 * 30);
            let pulled =
                (!i.is_multiple_of(3)).then(|| pushed + Duration::hours(((i * 31) % 500) as i64));
            tags::ActiveModel {
                repository_id: Set(repo.id),
                name: Set(tag_name(i)),
                manifest_id: Set(manifest_ids[i / TAGS_PER_MANIFEST]),
                created_at: Set(pushed),
                updated_at: Set(pushed),
                last_pulled_at: Set(pulled),
                pull_count: Set(if pulled.is_some() { (i % 97) as i64 } else { 0 }),
                ..Default::default()
            }
        })
        .collect();
    let txn = db.begin_write().await?;
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(TAG_CHUNK).collect();
        tags::Entity::insert_many(chunk)
            .exec_without_returning(&txn)
            .await?;
    }
    txn.commit().await?;
    Ok(repo.id)
}
