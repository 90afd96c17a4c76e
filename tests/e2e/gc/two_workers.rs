//! Acceptance 3: two berth-gc processes never review the same queue row (and a SQLite
//! variant: the single lease of the write transaction).

use super::*;

/// Seed `n` unreferenced blobs, each with bytes in the store and a due review row.
async fn seed_unreferenced(stack: &Stack, db: &berth_db::Db, n: usize) -> Vec<Digest> {
    let now = chrono::Utc::now();
    let due = now - chrono::Duration::seconds(1);
    let mut digests = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut rows = Vec::new();
        let mut queue = Vec::new();
        for i in chunk {
            let bytes = format!("unreferenced blob {i}").into_bytes();
            let d = Digest::sha256(&bytes);
            let dir = stack.store_path().join("blobs/sha256").join(&d.hex()[..2]);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(d.hex()), &bytes).unwrap();
            rows.push(blobs::ActiveModel {
                digest: Set(d.to_string()),
                size: Set(bytes.len() as i64),
                created_at: Set(now),
            });
            queue.push(blob_q::ActiveModel {
                digest: Set(d.to_string()),
                review_after: Set(due),
                review_count: Set(0),
                event: Set("blob_upload".into()),
                created_at: Set(now),
            });
            digests.push(d);
        }
        blobs::Entity::insert_many(rows)
            .exec_without_returning(&db.write)
            .await
            .unwrap();
        blob_q::Entity::insert_many(queue)
            .exec_without_returning(&db.write)
            .await
            .unwrap();
    }
    digests
}

/// Acceptance 3: two berth-gc processes (two blob workers each) drain a queue of `n` due
/// unreferenced blobs. Every review is counted once in the reviewing process's
/// `berth_gc_runs_total`; a row reviewed twice would be counted twice (the second review
/// finds its blob gone and counts a `noop`), so the sum over both processes equals `n`
/// exactly, all `dangling`, only if no row was taken by two workers.
async fn two_processes_never_share_a_row(stack: Stack, n: usize) {
    let db = berth_db::connect(&stack.db.url).await.unwrap();
    let env = [
        FAST_GC[0],
        FAST_GC[1],
        FAST_GC[2],
        ("BERTH_GC_BLOB_WORKERS", "2"),
        ("BERTH_GC_REVIEW_DELAY", "0s"),
    ];
    // Both processes are up and polling before the rows appear, so both get a share.
    let (gc1, gc2) = tokio::join!(stack.start_gc(&env), stack.start_gc(&env));
    let started = Instant::now();
    let seeded = seed_unreferenced(&stack, &db, n).await;
    let deadline = Instant::now() + Duration::from_secs(300);
    while blob_q::Entity::find().count(&db.read).await.unwrap() > 0 {
        assert!(Instant::now() < deadline, "queue not drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = started.elapsed();
    let blob = "worker=\"blob\"";
    let (dangling, noop, error) = ("result=\"dangling\"", "result=\"noop\"", "result=\"error\"");
    // A review is counted just after its commit: give the last ones a moment to show.
    let settle = Instant::now() + Duration::from_secs(5);
    while runs(&gc1.url, &[blob, dangling]).await + runs(&gc2.url, &[blob, dangling]).await
        < n as u64
        && Instant::now() < settle
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut counts = Vec::new();
    for gc in [&gc1, &gc2] {
        counts.push((
            runs(&gc.url, &[blob, dangling]).await,
            runs(&gc.url, &[blob, noop]).await,
            runs(&gc.url, &[blob, error]).await,
        ));
    }
    let [(d1, n1, e1), (d2, n2, e2)] = [counts[0], counts[1]];
    eprintln!(
        "acceptance 3 ({n} rows): process 1 deleted {d1} (noop {n1}), process 2 deleted {d2} \
         (noop {n2}), in {took:?}; {} reviews rolled back on a lost race and ran again",
        e1 + e2
    );
    // Completed reviews: exactly one per row. A row taken by two workers would show as a
    // second completed review (a `noop`: the first one deleted the blob).
    assert_eq!(n1 + n2, 0, "some row was reviewed twice");
    assert_eq!(
        d1 + d2,
        n as u64,
        "some row was reviewed twice (or skipped)"
    );
    assert!(
        d1 > 0 && d2 > 0,
        "both processes must have worked: {d1} / {d2}"
    );
    assert_eq!(blobs::Entity::find().count(&db.read).await.unwrap(), 0);
    assert!(store_digests(stack.store_path()).is_empty());
    assert_eq!(seeded.len(), n);
}

mod two_processes_never_share_a_row {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        if let Some(s) =
            Stack::start_with(berth_test_support::Backend::Postgres, options("0s")).await
        {
            two_processes_never_share_a_row(s, 2000).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        if let Some(s) = Stack::start_with(berth_test_support::Backend::Sqlite, options("0s")).await
        {
            two_processes_never_share_a_row(s, 500).await;
        }
    }
}
