//! `berth-gc usage` on a known fixture, SQLite and PostgreSQL: the live figures per root
//! namespace, project and repository, the independent `--recompute` agreeing with them, and
//! the binary's output lines.

use berth_gc::usage::{Args, Row, collect, render};
use berth_test_support::fixtures::usage::{group, image, index, project, repo, tag};
use berth_test_support::{TestDb, db_test};

fn row(scope: &'static str, path: &str, bytes: i64) -> Row {
    Row {
        scope,
        path: path.into(),
        bytes,
        recomputed: Some(bytes),
    }
}

db_test!(usage_per_namespace_project_and_repository);
async fn usage_per_namespace_project_and_repository(db: TestDb) {
    let conn = berth_db::connect(&db.url).await.expect("connect");
    berth_db::migrate(&conn).await.expect("migrate");
    let c = &conn.write;
    let acme = group(c, None, "acme").await;
    let platform = group(c, Some(&acme), "platform").await;
    let other_root = group(c, None, "acme_other").await;
    project(c, &acme, "web").await;
    project(c, &platform, "api").await;
    project(c, &other_root, "app").await;
    let web = repo(c, "acme/web").await;
    let web_tools = repo(c, "acme/web/tools").await;
    let api = repo(c, "acme/platform/api").await;
    let other = repo(c, "acme_other/app").await;

    let m1 = image(
        c,
        web,
        "sha256:m1",
        ("sha256:c1", 10),
        &[("sha256:base", 1000), ("sha256:app", 200)],
    )
    .await;
    tag(c, web, "v1", m1).await;
    tag(c, web, "latest", m1).await;
    let m2 = image(
        c,
        web_tools,
        "sha256:m2",
        ("sha256:c2", 20),
        &[("sha256:base", 1000), ("sha256:tool", 300)],
    )
    .await;
    tag(c, web_tools, "v1", m2).await;
    image(
        c,
        web,
        "sha256:untagged",
        ("sha256:c9", 9),
        &[("sha256:huge", 1_000_000)],
    )
    .await;
    let amd = image(
        c,
        api,
        "sha256:amd",
        ("sha256:c3", 30),
        &[("sha256:base", 1000), ("sha256:amd-l", 400)],
    )
    .await;
    let arm = image(
        c,
        api,
        "sha256:arm",
        ("sha256:c4", 40),
        &[("sha256:arm-l", 500)],
    )
    .await;
    let idx = index(c, api, "sha256:idx", vec![amd, arm]).await;
    tag(c, api, "multi", idx).await;
    let o = image(
        c,
        other,
        "sha256:o",
        ("sha256:c1", 10),
        &[("sha256:other", 7)],
    )
    .await;
    tag(c, other, "x", o).await;

    let args = Args {
        recompute: true,
        repositories: true,
        json: false,
    };
    let rows = collect(&conn, &args).await.expect("usage");
    let api_bytes = 30 + 1000 + 400 + 40 + 500;
    let web_bytes = 10 + 1000 + 200 + 20 + 300;
    assert_eq!(
        rows,
        vec![
            row("namespace", "acme", web_bytes + api_bytes - 1000),
            row("project", "acme/platform/api", api_bytes),
            row("repository", "acme/platform/api", api_bytes),
            row("project", "acme/web", web_bytes),
            row("repository", "acme/web", 10 + 1000 + 200),
            row("repository", "acme/web/tools", 20 + 1000 + 300),
            row("namespace", "acme_other", 17),
            row("project", "acme_other/app", 17),
            row("repository", "acme_other/app", 17),
        ]
    );
    let text = render(&rows);
    assert!(
        text.ends_with(
            "summary: 2 root namespace(s), 3 project(s), 0 mismatch(es) after recompute\n"
        ),
        "{text}"
    );

    // Without flags: namespaces and projects only, no recomputed figures.
    let rows = collect(
        &conn,
        &Args {
            recompute: false,
            repositories: false,
            json: false,
        },
    )
    .await
    .expect("usage");
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|r| r.scope != "repository" && r.recomputed.is_none())
    );

    // The binary prints the same figures and exits 0.
    let panics = berth_test_support::PanicGuard::new("berth-gc usage");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_berth-gc"))
        .env_clear()
        .env(berth_test_support::panics::PANIC_FILE_ENV, panics.path())
        .env("RUST_LOG", "warn")
        .env("BERTH_DATABASE_URL", &db.url)
        .args(["usage", "--recompute"])
        .output()
        .await
        .expect("berth-gc usage");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with("namespace  acme "), "{stdout}");
    assert!(
        first.contains(&format!(" {} bytes", web_bytes + api_bytes - 1000)),
        "{stdout}"
    );
    assert!(first.ends_with("recomputed: same"), "{stdout}");
}
