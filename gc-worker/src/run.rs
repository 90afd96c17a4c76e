//! `berth-gc run`: connect, serve `/-/health`, `/-/ready` and `/metrics`, run the online-GC
//! workers, the background-job workers (and the cleanup scheduler) until SIGINT/SIGTERM, then let every worker finish
//! the review it is in before exiting.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use berth_blobstore::BlobStore;
use berth_db::Db;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::worker::{self, Settings, agent::Pace};

/// Run until a shutdown signal.
pub async fn run(cfg: crate::Config, migrate: bool) -> anyhow::Result<()> {
    run_until(cfg, migrate, berth_server::shutdown_signal()).await
}

/// Run until `shutdown` resolves (tests pass their own).
pub async fn run_until(
    cfg: crate::Config,
    migrate: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let db = berth_db::connect(cfg.database_url.expose_secret())
        .await
        .context("connecting to the database")?;
    if migrate {
        berth_db::migrate(&db).await.context("migrating")?;
    }
    // berth-gc owns the review delay: the registry and berth-auth follow what it records
    // (`berth_db::settings`), so only this process's setting decides it.
    berth_db::settings::record_review_delay(&db.write, cfg.gc_review_delay, true)
        .await
        .context("recording the GC review delay")?;
    let store = berth_blobstore::open_store(&cfg.storage_url).await?;
    let settings = Settings {
        review_delay: cfg.gc_review_delay,
        storage_timeout: cfg.gc_storage_timeout,
    };
    let pace = Pace {
        interval: cfg.gc_interval,
        max_backoff: cfg.gc_max_backoff,
    };
    anyhow::ensure!(
        !pace.interval.is_zero(),
        "BERTH_GC_INTERVAL must be greater than zero"
    );
    let gauges_every = cfg
        .gc_queue_metrics_interval
        .max(Duration::from_millis(100));
    let limits = cfg.http.limits()?;
    let listener = tokio::net::TcpListener::bind(&cfg.gc_addr)
        .await
        .with_context(|| format!("binding {}", cfg.gc_addr))?;

    let (stop_tx, stop) = watch::channel(false);
    let mut tasks = JoinSet::new();
    for _ in 0..cfg.gc_blob_workers {
        let (db, store, settings) = (db.clone(), store.clone(), settings.clone());
        tasks.spawn(worker::agent::run("blob", pace, stop.clone(), move || {
            let (db, store, settings) = (db.clone(), store.clone(), settings.clone());
            async move { worker::blob::run_once(&db, &store, &settings, chrono::Utc::now()).await }
        }));
    }
    for _ in 0..cfg.gc_manifest_workers {
        let (db, settings) = (db.clone(), settings.clone());
        tasks.spawn(worker::agent::run(
            "manifest",
            pace,
            stop.clone(),
            move || {
                let (db, settings) = (db.clone(), settings.clone());
                async move { worker::manifest::run_once(&db, &settings, chrono::Utc::now()).await }
            },
        ));
    }
    let upload_expiry = cfg.upload_expiry;
    if !upload_expiry.is_zero() {
        let (db, store) = (db.clone(), store.clone());
        tasks.spawn(worker::agent::run(
            "uploads",
            pace,
            stop.clone(),
            move || {
                let (db, store) = (db.clone(), store.clone());
                async move {
                    worker::uploads::run_once(
                        &db,
                        store.as_ref(),
                        upload_expiry,
                        chrono::Utc::now(),
                    )
                    .await
                }
            },
        ));
    }
    let job_settings = crate::jobs::Settings {
        lease: berth_server::parse_duration(&cfg.job_lease).context("BERTH_JOB_LEASE")?,
        batch: cfg.job_batch_size,
        max_attempts: cfg.job_max_attempts,
        review_delay: settings.review_delay,
    };
    anyhow::ensure!(
        !job_settings.lease.is_zero(),
        "BERTH_JOB_LEASE must be greater than zero"
    );
    let job_poll = berth_server::parse_duration(&cfg.job_poll_interval)
        .context("BERTH_JOB_POLL_INTERVAL")?
        .max(Duration::from_millis(10));
    for _ in 0..cfg.job_workers {
        let runner = Arc::new(crate::jobs::Runner::new(db.clone(), job_settings.clone()));
        // Idle polls are one cheap read, so they need no back-off.
        let pace = Pace {
            interval: job_poll,
            max_backoff: job_poll,
        };
        let stop_rx = stop.clone();
        tasks.spawn(worker::agent::run("jobs", pace, stop.clone(), move || {
            let (runner, stop_rx) = (runner.clone(), stop_rx.clone());
            async move { runner.run_once(&stop_rx).await }
        }));
    }
    tasks.spawn(queue_gauges(db.clone(), gauges_every, stop.clone()));
    // The cleanup-policy scheduler (crate::cleanup), stopping when `stop` turns true.
    tasks.spawn(crate::cleanup::scheduler(
        cfg.clone(),
        db.clone(),
        stop.clone(),
    ));
    tracing::info!(
        addr = %cfg.gc_addr,
        blob_workers = cfg.gc_blob_workers,
        manifest_workers = cfg.gc_manifest_workers,
        job_workers = cfg.job_workers,
        "berth-gc running"
    );

    let app = berth_server::catch_panics(
        berth_server::health_routes(ready_check(db.clone(), store.clone())),
        r#"{"error":"internal error"}"#,
    );
    let served = berth_server::serve(listener, app, limits, shutdown).await;
    let _ = stop_tx.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("berth-gc stopped");
    served.context("serving health endpoints")
}

/// `/-/ready`: the database answers and the store can be listed from.
fn ready_check(
    db: Db,
    store: Arc<dyn BlobStore>,
) -> impl Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send>>
+ Clone
+ Send
+ Sync
+ 'static {
    move || {
        let (db, store) = (db.clone(), store.clone());
        Box::pin(async move {
            db.ping().await.map_err(|e| format!("database: {e}"))?;
            let probe: berth_core::Digest = berth_core::Digest::sha256(b"");
            store
                .stat(&probe)
                .await
                .map_err(|e| format!("store: {e}"))?;
            Ok(())
        })
    }
}

/// Refresh `berth_gc_queue_rows{queue}`, `berth_gc_queue_overdue_rows{queue}` and
/// `berth_jobs{state}` every `every` (six `COUNT` queries on the read pool).
async fn queue_gauges(db: Db, every: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match berth_db::gc_review::queue_depths(&db.read, chrono::Utc::now()).await {
            Ok((blobs, blobs_due, manifests, manifests_due)) => {
                metrics::gauge!("berth_gc_queue_rows", "queue" => "blob").set(blobs as f64);
                metrics::gauge!("berth_gc_queue_overdue_rows", "queue" => "blob")
                    .set(blobs_due as f64);
                metrics::gauge!("berth_gc_queue_rows", "queue" => "manifest").set(manifests as f64);
                metrics::gauge!("berth_gc_queue_overdue_rows", "queue" => "manifest")
                    .set(manifests_due as f64);
            }
            Err(e) => tracing::warn!(error = %e, "counting queue rows failed"),
        }
        crate::jobs::refresh_gauges(&db).await;
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
