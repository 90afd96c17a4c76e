//! Unlinking a blob from a repository (`DELETE /v2/<name>/blobs/<digest>`). The bytes stay
//! until GC finds no repository references them.

use berth_core::Digest;
use chrono::Utc;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use berth_db::entity::{layers, manifests};
use berth_db::{blobs, gc};

use crate::error::ContentError;
use crate::retry::with_retry;
use crate::{Content, Result};

impl Content {
    /// Unlink `digest` from a repository and queue it for review; `false` if it was not
    /// linked. Refused while a manifest stored in the repository references it as config
    /// or layer: an untagged manifest may be tagged again at any moment, and an image whose
    /// blob is gone cannot be pulled (with an immutable tag, not even replaced).
    #[tracing::instrument(skip_all, fields(repository.id = repository_id, blob.digest = %digest))]
    pub async fn unlink_blob(&self, repository_id: i64, digest: &Digest) -> Result<bool> {
        let d = digest.to_string();
        with_retry("unlink_blob", || async {
            let now = Utc::now();
            let txn = self.db.begin_write().await?;
            let as_layer = layers::Entity::find()
                .filter(layers::Column::RepositoryId.eq(repository_id))
                .filter(layers::Column::BlobDigest.eq(d.as_str()))
                .count(&txn)
                .await?;
            let as_config = manifests::Entity::find()
                .filter(manifests::Column::RepositoryId.eq(repository_id))
                .filter(manifests::Column::ConfigDigest.eq(d.as_str()))
                .count(&txn)
                .await?;
            if as_layer + as_config > 0 {
                return Err(ContentError::BlobInUse {
                    digest: d.clone(),
                    manifests: as_layer + as_config,
                });
            }
            if !blobs::unlink(&txn, repository_id, &d).await? {
                return Ok(false);
            }
            gc::enqueue_blob(&txn, &d, gc::Event::BlobUnlink, self.review_after(now), now).await?;
            txn.commit().await?;
            Ok(true)
        })
        .await
    }
}
