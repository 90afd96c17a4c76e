//! A scheduled cleanup of a big repository (20,000 tags by default; `BERTH_CLEANUP_TEST_TAGS`
//! and `BERTH_CLEANUP_TEST_CAP` change the size and the cap) on SQLite and PostgreSQL, in
//! resumable slices under a small per-run cap: each tick runs one slice and leaves `cleanup_unfinished` until the
//! last; a tag re-pushed after the run started survives; the end result is exactly the
//! preview's list minus that tag, counted once; every deleted tag's manifest is queued for
//! GC review. Also: a shutdown cuts a slice short after one batch.

use std::collections::BTreeSet;
use std::time::Instant;

use berth_core::Digest;
use berth_core::cleanup_policy::Policy;
use berth_db::entity::{gc_manifest_review_queue, projects, tags};
use berth_db::manifests::{NewLayer, NewManifest};
use berth_db::namespaces::{NewGroup, create_group};
use berth_db::project_admin::{self, NewProject};
use berth_db::repository_cleanups as state;
use berth_db::sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use berth_gc::cleanup::{Cleaner, tick};
use berth_test_support::{TestDb, db_test};
use chrono::{Duration, Utc};
use tokio::sync::watch;

const TAGS_PER_MANIFEST: usize = 100;

fn tag_count() -> usize {
    std::env::var("BERTH_CLEANUP_TEST_TAGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

/// A project `acme/app` with repository `acme/app` holding `count` tags `t-00000…` (plus
/// `latest` and five `keep-*`), published one minute apart in groups of five sharing a
/// time, the newest 50 within the last day, all older ones more than 30 days ago.
async fn populate(db: &berth_db::Db, count: usize) -> (projects::Model, i64) {
    let project = create_project(db).await;
    let repo = fill(db, "acme/app", count).await;
    (project, repo)
}

/// The project `acme/app`.
async fn create_project(db: &berth_db::Db) -> projects::Model {
    let c = &db.write;
    let group = create_group(
        c,
        NewGroup {
            parent: None,
            path: "acme",
            name: "Acme",
            visibility: "private",
        },
    )
    .await
    .unwrap();
    project_admin::create(
        c,
        NewProject {
            namespace: &group,
            path: "app",
            name: "app",
            visibility: "private",
            registry_access: "enabled",
        },
    )
    .await
    .unwrap()
}

/// Repository `name` with `count` tags (see [`populate`]); returns its id.
async fn fill(db: &berth_db::Db, name: &str, count: usize) -> i64 {
    let now = Utc::now();
    let txn = db.begin_write().await.unwrap();
    let repo = berth_db::repositories::get_or_create(&txn, name, now)
        .await
        .unwrap();
    let total = count + 6;
    let mut manifest_ids = Vec::new();
    for m in 0..total.div_ceil(TAGS_PER_MANIFEST) {
        let config = format!("{{\"repository\":\"{name}\",\"build\":{m}}}");
        let config_digest = Digest::sha256(config.as_bytes()).to_string();
        berth_db::blobs::insert(&txn, &config_digest, config.len() as i64, now)
            .await
            .unwrap();
        let layer = Digest::sha256(format!("layer-{name}-{m}").as_bytes()).to_string();
        berth_db::blobs::insert(&txn, &layer, 1000, now)
            .await
            .unwrap();
        let payload =
            format!("{{\"schemaVersion\":2,\"config\":\"{config_digest}\",\"layer\":\"{layer}\"}}");
        let new = NewManifest {
            repository_id: repo.id,
            digest: Digest::sha256(payload.as_bytes()).to_string(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            artifact_type: None,
            subject_digest: None,
            config_digest: Some(config_digest),
            payload: payload.into_bytes(),
        };
        let layers = vec![NewLayer {
            digest: layer,
            media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
            size: 1000,
        }];
        manifest_ids.push(
            berth_db::manifests::insert(&txn, new, layers, Vec::new(), now)
                .await
                .unwrap(),
        );
    }
    txn.commit().await.unwrap();
    let old = now - Duration::days(400);
    let names: Vec<String> = (0..count)
        .map(|i| format!("t-{i:05}"))
        .chain(["latest".to_owned()])
        .chain((0..5).map(|i| format!("keep-{i}")))
        .collect();
    let rows: Vec<tags::ActiveModel> = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let at = if i + 50 >= count && i < count {
                now - Duration::hours(1) - Duration::minutes((count - i) as i64)
            } else {
                old + Duration::minutes((i / 5) as i64)
            };
            tags::ActiveModel {
                repository_id: Set(repo.id),
                name: Set(name),
                manifest_id: Set(manifest_ids[i / TAGS_PER_MANIFEST]),
                created_at: Set(at),
                updated_at: Set(at),
                last_pulled_at: Set(None),
                pull_count: Set(0),
                ..Default::default()
            }
        })
        .collect();
    let txn = db.begin_write().await.unwrap();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(1000).collect();
        tags::Entity::insert_many(chunk)
            .exec_without_returning(&txn)
            .await
            .unwrap();
    }
    txn.commit().await.unwrap();
    repo.id
}

async fn tag_names(db: &berth_db::Db, repository_id: i64) -> BTreeSet<String> {
    berth_db::tags::list_names(&db.read, repository_id, None, i64::MAX as u64)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

fn config(cap: u64) -> berth_gc::Config {
    berth_gc::Config {
        cleanup_max_tags_per_run: cap,
        cleanup_batch_size: 100,
        gc_review_delay: std::time::Duration::from_secs(3600),
        ..Default::default()
    }
}

db_test!(big_repository_in_resumable_slices);
async fn big_repository_in_resumable_slices(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.unwrap();
    berth_db::migrate(&conn).await.unwrap();
    let count = tag_count();
    let t0 = Instant::now();
    let (project, repo) = populate(&conn, count).await;
    let populated = t0.elapsed();
    let policy = Policy {
        enabled: true,
        keep_n: Some(10),
        older_than: Some("30d".into()),
        name_regex: Some(".*".into()),
        name_regex_keep: Some("keep-.*".into()),
        ..Policy::default()
    };
    let due_at = Utc::now() - Duration::minutes(1);
    berth_db::expiration_policies::upsert(&conn.write, project.id, &policy, Some(due_at))
        .await
        .unwrap();
    // The preview: what the scheduled run (judging as of its due time) will delete.
    let stored = berth_db::expiration_policies::get(&conn.read, project.id)
        .await
        .unwrap()
        .unwrap();
    let as_of =
        berth_db::cleanup_plan::next_run_as_of(&conn.read, repo, stored.next_run_at, Utc::now())
            .await
            .unwrap();
    let rules = berth_db::cleanup_plan::rules(&policy).unwrap();
    let preview: BTreeSet<String> =
        berth_db::cleanup_plan::evaluate(&conn.read, project.id, repo, &rules, as_of)
            .await
            .unwrap()
            .doomed()
            .into_iter()
            .collect();
    // Everything but latest, keep-*, the newest 50 (older_than) and 10 (keep_n, inside those).
    assert_eq!(preview.len(), count - 50);
    let before = tag_names(&conn, repo).await;

    // `BERTH_CLEANUP_TEST_CAP` overrides the per-run cap (default: a sixth of the tags).
    let cap = std::env::var("BERTH_CLEANUP_TEST_CAP")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or((count as u64 / 6).max(1));
    let cleaner = Cleaner::new(conn.clone(), &config(cap)).unwrap();
    let (_tx, stop) = watch::channel(false);
    let t1 = Instant::now();
    let mut slices = 0;
    let mut repushed = None;
    loop {
        let ran = tick(&cleaner, &stop).await.unwrap();
        assert_eq!(ran.len(), 1, "one slice of the one repository per tick");
        slices += 1;
        let s = state::find(&conn.read, repo).await.unwrap().unwrap();
        if ran[0].complete {
            assert_eq!(s.expiration_policy_cleanup_status, state::UNSCHEDULED);
            break;
        }
        assert_eq!(ran[0].deleted, cap);
        assert!(!ran[0].complete);
        assert_eq!(s.expiration_policy_cleanup_status, state::UNFINISHED);
        assert_eq!(s.expiration_policy_started_at, Some(as_of));
        // A doomed tag still there is re-pushed after the run started: it must survive.
        if repushed.is_none() {
            let left = tag_names(&conn, repo).await;
            let victim = preview
                .iter()
                .rev()
                .find(|n| left.contains(*n))
                .unwrap()
                .clone();
            tags::Entity::update_many()
                .col_expr(tags::Column::UpdatedAt, Utc::now().into())
                .filter(tags::Column::RepositoryId.eq(repo))
                .filter(tags::Column::Name.eq(victim.as_str()))
                .exec(&conn.write)
                .await
                .unwrap();
            repushed = Some(victim);
        }
        assert!(slices < 100);
    }
    let cleaned = t1.elapsed();
    let repushed = repushed.expect("the cap cut the run short at least once");
    let after = tag_names(&conn, repo).await;
    let deleted: BTreeSet<String> = before.difference(&after).cloned().collect();
    let mut expected = preview.clone();
    expected.remove(&repushed);
    assert_eq!(
        deleted, expected,
        "exactly the preview, minus the re-pushed tag"
    );
    let s = state::find(&conn.read, repo).await.unwrap().unwrap();
    assert_eq!(
        s.last_cleanup_deleted_tags_count,
        Some(expected.len() as i64)
    );
    // The policy moved on by its cadence (1d) from the tick that scheduled it.
    let next = berth_db::expiration_policies::get(&conn.read, project.id)
        .await
        .unwrap()
        .unwrap()
        .next_run_at
        .unwrap();
    assert!(next > Utc::now() + Duration::hours(23));
    // Every manifest that lost a tag is queued for GC review.
    let queued = gc_manifest_review_queue::Entity::find()
        .filter(gc_manifest_review_queue::Column::RepositoryId.eq(repo))
        .count(&conn.read)
        .await
        .unwrap();
    assert_eq!(queued as usize, (count - 50).div_ceil(TAGS_PER_MANIFEST));
    // A further tick has nothing to do.
    assert!(tick(&cleaner, &stop).await.unwrap().is_empty());
    eprintln!(
        "cleanup {:?}: {count} tags ({} deleted) populated in {populated:?}, cleaned in {slices} slices of at most {cap} in {cleaned:?}",
        db.backend,
        expected.len()
    );
}

db_test!(shutdown_cuts_a_slice_short);
async fn shutdown_cuts_a_slice_short(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.unwrap();
    berth_db::migrate(&conn).await.unwrap();
    let (project, repo) = populate(&conn, 500).await;
    let cleaner = Cleaner::new(conn.clone(), &config(1000)).unwrap();
    let ids = cleaner.schedule_project_now(&project).await.unwrap();
    assert_eq!(ids, vec![repo]);
    let (tx, stop) = watch::channel(false);
    tx.send(true).unwrap();
    // Manual run (the policy is not even enabled): one batch, then stop.
    let r = cleaner
        .run_once(&stop, Some(&ids), &[], true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.deleted, r.complete), (100, false));
    let s = state::find(&conn.read, repo).await.unwrap().unwrap();
    assert_eq!(s.expiration_policy_cleanup_status, state::UNFINISHED);
    let (_tx, go) = watch::channel(false);
    let r = cleaner
        .run_once(&go, Some(&ids), &[], true)
        .await
        .unwrap()
        .unwrap();
    // Default policy (keep_n 10, older_than 90d, no keep regex): every tag but `latest`
    // and the 50 recent ones goes (`keep-*` too).
    assert_eq!((r.deleted, r.complete), (505 - 50 - 100, true));
    let s = state::find(&conn.read, repo).await.unwrap().unwrap();
    assert_eq!(s.last_cleanup_deleted_tags_count, Some(505 - 50));
}

db_test!(two_workers_never_share_a_repository);
async fn two_workers_never_share_a_repository(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.unwrap();
    berth_db::migrate(&conn).await.unwrap();
    let project = create_project(&conn).await;
    let mut repos = Vec::new();
    for name in ["acme/app", "acme/app/a", "acme/app/b", "acme/app/c/d"] {
        repos.push(fill(&conn, name, 1_000).await);
    }
    let policy = Policy {
        enabled: true,
        ..Policy::default()
    };
    let due_at = Utc::now() - Duration::minutes(1);
    berth_db::expiration_policies::upsert(&conn.write, project.id, &policy, Some(due_at))
        .await
        .unwrap();
    let before: Vec<usize> = {
        let mut v = Vec::new();
        for r in &repos {
            v.push(tag_names(&conn, *r).await.len());
        }
        v
    };
    // Two gc-workers (separate connections, separate owners) tick together until done.
    let a = Cleaner::new(berth_db::connect(&db.url).await.unwrap(), &config(300)).unwrap();
    let b = Cleaner::new(berth_db::connect(&db.url).await.unwrap(), &config(300)).unwrap();
    let (_tx, stop) = watch::channel(false);
    let mut slices = Vec::new();
    for _ in 0..20 {
        let (ra, rb) = tokio::join!(tick(&a, &stop), tick(&b, &stop));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        // A repository is held by one worker at a time: the two workers' slices of one
        // repository never overlap (each interval runs from after the claim committed to
        // before the release was written).
        for x in &ra {
            for y in rb.iter().filter(|y| y.repository_id == x.repository_id) {
                assert!(
                    x.released < y.claimed || y.released < x.claimed,
                    "overlapping slices of repository {}",
                    x.repository_id
                );
            }
        }
        let idle = ra.is_empty() && rb.is_empty();
        slices.extend(ra);
        slices.extend(rb);
        if idle {
            break;
        }
    }
    // Default policy (keep_n 10, older_than 90d): each repository keeps `latest` and its
    // 50 recent tags; every other tag went exactly once.
    for (r, n) in repos.iter().zip(&before) {
        let left = tag_names(&conn, *r).await.len();
        assert_eq!(left, 51, "repository {r}");
        let counted: u64 = slices
            .iter()
            .filter(|s| s.repository_id == *r)
            .map(|s| s.deleted)
            .sum();
        assert_eq!(counted as usize, n - 51, "repository {r}");
        let s = state::find(&conn.read, *r).await.unwrap().unwrap();
        assert_eq!(s.expiration_policy_cleanup_status, state::UNSCHEDULED);
        assert_eq!(s.last_cleanup_deleted_tags_count, Some((n - 51) as i64));
    }
}
