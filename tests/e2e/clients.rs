//! Real container clients against a running registry: `podman` (vfs storage) pushes and
//! pulls a multi-layer image, `skopeo` inspects it and copies it by mounting layers.

use std::path::Path;
use std::process::Command;

use berth_test_support::has_program;

use crate::both;
use crate::support::*;

struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Podman {
        Podman {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn authfile(&self) -> String {
        self.dir.path().join("auth.json").display().to_string()
    }

    fn podman(&self, args: &[&str]) -> String {
        let root = self.dir.path().join("root");
        let runroot = self.dir.path().join("runroot");
        let mut full = vec![
            "--storage-driver".to_string(),
            "vfs".into(),
            "--root".into(),
            root.display().to_string(),
            "--runroot".into(),
            runroot.display().to_string(),
        ];
        full.extend(args.iter().map(|s| s.to_string()));
        run("podman", &full)
    }

    fn skopeo(&self, args: &[&str]) -> String {
        run(
            "skopeo",
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }
}

fn run(program: &str, args: &[String]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {} failed:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn build_context(dir: &Path) {
    std::fs::write(
        dir.join("Containerfile"),
        "FROM scratch\nCOPY a.txt /a.txt\nCOPY b.bin /b.bin\nCOPY c.txt /c.txt\n",
    )
    .unwrap();
    std::fs::write(dir.join("a.txt"), "first layer\n").unwrap();
    let big: Vec<u8> = (0..2_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.join("b.bin"), big).unwrap();
    std::fs::write(dir.join("c.txt"), "third layer\n").unwrap();
}

async fn metric(env: &Env, name: &str) -> f64 {
    let text = env
        .http
        .get(format!("{}/metrics", env.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

both!(podman_push_pull_and_skopeo_mount, |env| {
    let available = has_program("podman") && has_program("skopeo");
    if !berth_test_support::require("podman and skopeo", available) {
        return;
    }
    let p = Podman::new();
    let host = env.host();
    let image = format!("{host}/acme/platform/api:v1");
    let ctx = tempfile::tempdir().unwrap();
    build_context(ctx.path());
    let auth = p.authfile();
    p.podman(&[
        "login",
        "--tls-verify=false",
        "--authfile",
        &auth,
        "-u",
        "tester",
        "-p",
        "secret",
        &host,
    ]);
    p.podman(&[
        "build",
        "--quiet",
        "-t",
        &image,
        &ctx.path().display().to_string(),
    ]);
    let digestfile = p.dir.path().join("digest");
    p.podman(&[
        "push",
        "--tls-verify=false",
        "--authfile",
        &auth,
        "--digestfile",
        &digestfile.display().to_string(),
        &image,
    ]);
    let pushed = std::fs::read_to_string(&digestfile)
        .unwrap()
        .trim()
        .to_owned();
    p.podman(&["rmi", "-f", &image]);
    p.podman(&["pull", "--tls-verify=false", "--authfile", &auth, &image]);
    let inspected: serde_json::Value = serde_json::from_str(&p.skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--authfile",
        &auth,
        &format!("docker://{image}"),
    ]))
    .unwrap();
    assert_eq!(
        inspected["Digest"].as_str().unwrap(),
        pushed,
        "skopeo sees the digest podman pushed"
    );
    let layers = inspected["Layers"].as_array().unwrap().len();
    assert_eq!(layers, 3);

    // Copy into a sub-repository: every layer is mounted, no layer bytes are uploaded again.
    let mounts_before = metric(&env, "berth_registry_blob_mounts_total").await;
    let bytes_before = metric(&env, "berth_registry_upload_bytes_total").await;
    p.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--authfile",
        &auth,
        &format!("docker://{image}"),
        &format!("docker://{host}/acme/platform/api/worker:v1"),
    ]);
    let mounts = metric(&env, "berth_registry_blob_mounts_total").await - mounts_before;
    let uploaded = metric(&env, "berth_registry_upload_bytes_total").await - bytes_before;
    // Every layer is mounted; the only bytes sent are the image config's.
    let raw: serde_json::Value = serde_json::from_str(&p.skopeo(&[
        "inspect",
        "--raw",
        "--tls-verify=false",
        "--authfile",
        &auth,
        &format!("docker://{image}"),
    ]))
    .unwrap();
    let config_size = raw["config"]["size"].as_f64().unwrap();
    assert_eq!(mounts, layers as f64, "every layer mounted");
    assert_eq!(uploaded, config_size, "nothing but the config uploaded");
    let copied: serde_json::Value = serde_json::from_str(&p.skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--authfile",
        &auth,
        &format!("docker://{host}/acme/platform/api/worker:v1"),
    ]))
    .unwrap();
    assert_eq!(copied["Digest"].as_str().unwrap(), pushed);
});
