//! `berth-gc check` against a registry's real database and store (issue 5): a consistent
//! state reports nothing; each injected inconsistency is reported exactly once; `--repair`
//! fixes what is safe; only the referenced blob whose bytes are gone stays.

use std::path::Path;
use std::time::{Duration, SystemTime};

use berth_core::Digest;
use sea_orm::ConnectionTrait;
use serde_json::{Value, json};

use crate::support::{Env, image_manifest, push_blob, push_image, put_manifest};

const REPO: &str = "acme/platform/app";

/// Run `berth-gc check` with `args`; returns (success, stdout JSON).
async fn check(env: &Env, args: &[&str]) -> (bool, Value) {
    let panics = berth_test_support::PanicGuard::new("berth-gc check");
    let out = tokio::process::Command::new(crate::support::binary("berth-gc"))
        .env_clear()
        .env(berth_test_support::panics::PANIC_FILE_ENV, panics.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("BERTH_DATABASE_URL", &env.db.url)
        .env(
            "BERTH_STORAGE_URL",
            format!("file://{}", env.store.path().display()),
        )
        .arg("check")
        .arg("--json")
        .args(args)
        .output()
        .await
        .expect("run berth-gc check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout} / {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.success(), report)
}

fn blob_path(store: &Path, digest: &Digest) -> std::path::PathBuf {
    let hex = digest.hex();
    store.join("blobs/sha256").join(&hex[..2]).join(hex)
}

/// Write `data` as a committed blob file nobody recorded, last modified `age` ago.
fn plant(store: &Path, data: &[u8], age: Duration) -> Digest {
    let digest = Digest::sha256(data);
    let path = blob_path(store, &digest);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(&path, data).expect("write");
    set_age(&path, age);
    digest
}

fn set_age(path: &Path, age: Duration) {
    let f = std::fs::File::options()
        .write(true)
        .open(path)
        .expect("open");
    f.set_modified(SystemTime::now() - age).expect("set mtime");
}

/// Move a blob's review row to `from_now` and set its review count.
async fn set_review(db: &berth_db::Db, digest: &Digest, from_now: chrono::Duration, count: i32) {
    use berth_db::entity::gc_blob_review_queue::{Column, Entity};
    use sea_orm::sea_query::Expr;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let res = Entity::update_many()
        .col_expr(
            Column::ReviewAfter,
            Expr::value(chrono::Utc::now() + from_now),
        )
        .col_expr(Column::ReviewCount, Expr::value(count))
        .filter(Column::Digest.eq(digest.to_string()))
        .exec(&db.write)
        .await
        .expect("update review row");
    assert_eq!(res.rows_affected, 1);
}

fn subjects(report: &Value, key: &str) -> Vec<String> {
    let mut v: Vec<String> = report[key]
        .as_array()
        .expect(key)
        .iter()
        .map(|f| {
            f.get("subject")
                .or(f.get("digest"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    v.sort();
    v
}

fn all_repaired(report: &Value, key: &str) -> bool {
    report[key]
        .as_array()
        .expect(key)
        .iter()
        .all(|f| f["repaired"] == json!(true))
}

crate::both!(check_finds_and_repairs, |env| {
    let store = env.store.path().to_owned();
    let v1 = push_image(&env, REPO, "v1", "one").await;
    push_image(&env, REPO, "v2", "two").await;
    push_image(&env, "acme/other", "latest", "three").await;
    let (ok, report) = check(&env, &[]).await;
    assert!(ok, "consistent state: {report:#}");
    assert_eq!(report["orphan_files"], json!([]));
    assert_eq!(report["queues"], json!([]));

    let db = berth_db::connect(&env.db.url).await.expect("db");
    let exec = |sql: String| {
        let db = db.clone();
        async move { db.write.execute_unprepared(&sql).await.expect(&sql) }
    };
    // 1. Bytes of a tagged image's layer vanish (data loss, unrepairable).
    let lost = Digest::sha256(b"layer-one");
    std::fs::remove_file(blob_path(&store, &lost)).expect("drop layer");
    // 2. Bytes of an unreferenced blob vanish (its row can go).
    let loose = push_blob(&env, REPO, b"loose blob").await;
    std::fs::remove_file(blob_path(&store, &loose)).expect("drop loose");
    // 3. An orphan file two hours old, and one that is fresh (within the grace period).
    let orphan = plant(&store, b"orphan bytes", Duration::from_secs(7200));
    let young = plant(&store, b"young bytes", Duration::ZERO);
    // 4. An unreferenced blob whose review row is gone.
    let unqueued = push_blob(&env, REPO, b"never reviewed").await;
    exec(format!(
        "DELETE FROM gc_blob_review_queue WHERE digest = '{unqueued}'"
    ))
    .await;
    // 5. An untagged manifest whose review row is gone.
    let cfg = push_blob(&env, REPO, b"{\"untagged\":1}").await;
    let m = image_manifest((&cfg, 14), &[], json!({}));
    let untagged = Digest::sha256(&m);
    let r = put_manifest(&env, REPO, &untagged.to_string(), &m).await;
    assert_eq!(r.status(), reqwest::StatusCode::CREATED);
    exec("DELETE FROM gc_manifest_review_queue".into()).await;
    // 6. An upload session untouched for eight days (row and file), and a stray old file.
    let old = chrono::Utc::now() - chrono::Duration::days(8);
    let repo_id = berth_db::repositories::get_or_create(&db.write, REPO, old)
        .await
        .expect("repo")
        .id;
    let session = uuid::Uuid::new_v4().to_string();
    berth_db::uploads::create(&db.write, &session, repo_id, None, old)
        .await
        .expect("upload row");
    let stray = uuid::Uuid::new_v4().to_string();
    for id in [&session, &stray] {
        let path = store.join("uploads").join(id);
        std::fs::write(&path, b"partial").expect("upload file");
        set_age(&path, Duration::from_secs(8 * 86400));
    }
    // 7. A review row overdue by two hours and failing for the seventh time.
    let reviewed = push_blob(&env, REPO, b"reviewed often").await;
    set_review(&db, &reviewed, chrono::Duration::hours(-2), 7).await;

    let (ok, report) = check(&env, &[]).await;
    assert!(!ok, "problems exit non-zero");
    assert_eq!(subjects(&report, "orphan_files"), vec![orphan.to_string()]);
    assert_eq!(report["young_unrecorded_files"], json!(1));
    let mut missing = vec![lost.to_string(), loose.to_string()];
    missing.sort();
    assert_eq!(subjects(&report, "missing_bytes"), missing);
    for m in report["missing_bytes"].as_array().expect("missing") {
        if m["digest"] == json!(lost.to_string()) {
            assert_eq!(
                m["users"],
                json!([{"repository": REPO, "manifest": v1.to_string(), "tag": "v1"}])
            );
        } else {
            assert_eq!(m["users"], json!([]));
        }
    }
    assert_eq!(
        subjects(&report, "unqueued_blobs"),
        vec![unqueued.to_string()]
    );
    assert_eq!(
        subjects(&report, "unqueued_manifests"),
        vec![format!("{REPO}@{untagged}")]
    );
    let mut uploads = vec![session.clone(), stray.clone()];
    uploads.sort();
    assert_eq!(subjects(&report, "stale_uploads"), uploads);
    let queues: Vec<(String, String, u64)> = report["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .map(|q| {
            (
                q["queue"].as_str().unwrap_or_default().to_owned(),
                q["kind"].as_str().unwrap_or_default().to_owned(),
                q["count"].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        queues,
        vec![
            ("blob".into(), "overdue".into(), 1),
            ("blob".into(), "failing".into(), 1)
        ]
    );
    assert!(
        blob_path(&store, &orphan).exists(),
        "read-only without --repair"
    );

    let (ok, report) = check(&env, &["--repair"]).await;
    assert!(!ok, "unrepairable problems remain");
    for key in [
        "orphan_files",
        "unqueued_blobs",
        "unqueued_manifests",
        "stale_uploads",
    ] {
        assert!(all_repaired(&report, key), "{key}: {report:#}");
    }
    for m in report["missing_bytes"].as_array().expect("missing") {
        let referenced = m["digest"] == json!(lost.to_string());
        assert_eq!(m["repaired"], json!(!referenced), "{m}");
    }
    assert!(!blob_path(&store, &orphan).exists());
    assert!(blob_path(&store, &young).exists(), "grace period respected");
    assert!(!store.join("uploads").join(&session).exists());
    assert!(!store.join("uploads").join(&stray).exists());
    // The workers would have handled the overdue row by now.
    set_review(&db, &reviewed, chrono::Duration::days(1), 0).await;

    let (ok, report) = check(&env, &[]).await;
    assert!(!ok);
    assert_eq!(subjects(&report, "missing_bytes"), vec![lost.to_string()]);
    for key in [
        "orphan_files",
        "unqueued_blobs",
        "unqueued_manifests",
        "stale_uploads",
        "queues",
    ] {
        assert_eq!(report[key], json!([]), "{key}");
    }
});
