//! What is alive, on SQLite and PostgreSQL: a tagged referrer keeps its untagged subject,
//! an untagged signature lives as long as the tagged image it signs, and both are counted
//! in usage exactly while GC keeps them.

use berth_db::entity::manifests as rows;
use berth_db::manifests::{NewLayer, NewManifest};
use berth_db::{blobs, gc_review, manifests, tags, usage};
use berth_test_support::fixtures::usage::{group, image, project, repo, tag};
use berth_test_support::{TestDb, db_test};
use chrono::Utc;
use sea_orm::{ConnectionTrait, EntityTrait};

/// A referrer (a signature) of `subject` in `repo` with one config and one layer blob.
async fn referrer(
    c: &impl ConnectionTrait,
    repo: i64,
    digest: &str,
    subject: &str,
    config: (&str, i64),
    layer: (&str, i64),
) -> i64 {
    let now = Utc::now();
    for (d, size) in [config, layer] {
        blobs::insert(c, d, size, now).await.expect("blob");
    }
    manifests::insert(
        c,
        NewManifest {
            repository_id: repo,
            digest: digest.into(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            artifact_type: Some("application/vnd.dev.cosign.artifact.sig.v1+json".into()),
            subject_digest: Some(subject.into()),
            config_digest: Some(config.0.into()),
            payload: digest.as_bytes().to_vec(),
        },
        vec![NewLayer {
            digest: layer.0.into(),
            media_type: "application/vnd.oci.image.layer.v1.tar".into(),
            size: layer.1,
        }],
        Vec::new(),
        now,
    )
    .await
    .expect("referrer")
}

async fn keeper(c: &impl ConnectionTrait, id: i64) -> Option<&'static str> {
    let m = rows::Entity::find_by_id(id)
        .one(c)
        .await
        .expect("read")
        .expect("manifest");
    gc_review::manifest_keeper(c, &m).await.expect("keeper")
}

db_test!(referrers_live_and_count_with_their_subjects);
async fn referrers_live_and_count_with_their_subjects(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let c = &conn.write;
    let acme = group(c, None, "acme").await;
    project(c, &acme, "web").await;
    let web = repo(c, "acme/web").await;

    // An untagged image kept alive by a tagged referrer of it: both live, both counted.
    let a = image(c, web, "sha256:a", ("sha256:ca", 10), &[("sha256:la", 100)]).await;
    let r = referrer(
        c,
        web,
        "sha256:r",
        "sha256:a",
        ("sha256:cr", 5),
        ("sha256:lr", 50),
    )
    .await;
    tag(c, web, "sig", r).await;
    assert_eq!(usage::repository_usage(c, web).await.expect("usage"), 165);
    assert_eq!(
        usage::project_usage(c, "acme/web").await.expect("usage"),
        165
    );
    assert_eq!(keeper(c, r).await, Some("tagged"));
    assert!(
        keeper(c, a).await.is_some(),
        "the referrer's subject is kept"
    );

    // Its tag gone, neither keeps the other alive: nothing counts, GC may take both.
    tags::delete(c, web, "sig").await.expect("untag");
    assert_eq!(usage::repository_usage(c, web).await.expect("usage"), 0);
    assert_eq!(keeper(c, r).await, None);
    assert_eq!(keeper(c, a).await, None);

    // An untagged signature of a tagged image lives and counts as long as the image does.
    let b = image(c, web, "sha256:b", ("sha256:cb", 20), &[("sha256:la", 100)]).await;
    tag(c, web, "v1", b).await;
    let s = referrer(
        c,
        web,
        "sha256:s",
        "sha256:b",
        ("sha256:cs", 3),
        ("sha256:ls", 7),
    )
    .await;
    assert_eq!(usage::repository_usage(c, web).await.expect("usage"), 130);
    assert!(
        keeper(c, s).await.is_some(),
        "the signature of a tagged image is kept"
    );
    tags::delete(c, web, "v1").await.expect("untag");
    assert_eq!(
        keeper(c, s).await,
        None,
        "the signature goes with its image"
    );
    assert_eq!(usage::repository_usage(c, web).await.expect("usage"), 0);

    // A signature in another repository does not keep or count a same-digest image here.
    let other = repo(c, "acme/web/other").await;
    let b2 = image(c, other, "sha256:b", ("sha256:cb", 20), &[]).await;
    tag(c, other, "v1", b2).await;
    assert_eq!(keeper(c, s).await, None);
}
