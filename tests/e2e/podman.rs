//! podman (own storage root, vfs driver) and skopeo driven as a user would, for the
//! credential tests: log in, build, push, pull, inspect, and a tiny OCI layout on disk.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_core::Digest;
use berth_test_support::has_program;
use serde_json::{Value, json};

use crate::stack::Stack;
/// podman (own storage root, vfs) and skopeo, with a tiny OCI image layout on disk.
pub(crate) struct Clients {
    /// Scratch directory: podman storage, build contexts, the OCI layout.
    pub(crate) dir: tempfile::TempDir,
    host: String,
}

impl Clients {
    pub(crate) fn new(stack: &Stack) -> Clients {
        let dir = tempfile::tempdir().unwrap();
        write_oci_layout(&dir.path().join("layout"), "pushed by skopeo\n");
        Clients {
            dir,
            host: stack.registry_host(),
        }
    }

    pub(crate) fn authfile(&self) -> String {
        self.dir.path().join("auth.json").display().to_string()
    }

    /// `oci:<layout>:v1`, the image skopeo pushes.
    pub(crate) fn layout(&self) -> String {
        format!("oci:{}:v1", self.dir.path().join("layout").display())
    }

    /// `host/<reference>`.
    pub(crate) fn image(&self, reference: &str) -> String {
        format!("{}/{reference}", self.host)
    }

    pub(crate) fn podman(&self, args: &[&str]) -> Result<String, String> {
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

    pub(crate) fn skopeo(&self, args: &[&str]) -> Result<String, String> {
        run(
            "skopeo",
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    }

    /// `podman login` (nothing is stored when it fails).
    pub(crate) fn login(&self, user: &str, secret: &str) -> Result<String, String> {
        self.podman(&[
            "login",
            "--tls-verify=false",
            "--authfile",
            &self.authfile(),
            "-u",
            user,
            "-p",
            secret,
            &self.host,
        ])
    }

    /// `skopeo copy` of the layout to `host/<reference>` as `user:secret`; the pushed
    /// manifest digest.
    pub(crate) fn push(&self, reference: &str, user: &str, secret: &str) -> Result<String, String> {
        let digestfile = self.dir.path().join("skopeo-digest");
        let _ = std::fs::remove_file(&digestfile);
        self.skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            &format!("{user}:{secret}"),
            "--digestfile",
            &digestfile.display().to_string(),
            &self.layout(),
            &format!("docker://{}", self.image(reference)),
        ])?;
        Ok(std::fs::read_to_string(&digestfile)
            .unwrap()
            .trim()
            .to_owned())
    }

    /// `skopeo inspect` of `host/<reference>` as `user:secret`: the manifest digest.
    pub(crate) fn inspect(
        &self,
        reference: &str,
        user: &str,
        secret: &str,
    ) -> Result<String, String> {
        let out = self.skopeo(&[
            "inspect",
            "--tls-verify=false",
            "--creds",
            &format!("{user}:{secret}"),
            &format!("docker://{}", self.image(reference)),
        ])?;
        let v: Value = serde_json::from_str(&out).map_err(|e| format!("{e}: {out}"))?;
        Ok(v["Digest"].as_str().unwrap_or_default().to_owned())
    }
}

pub(crate) fn run(program: &str, args: &[String]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let text = format!(
        "{program} {}:\n{}\n{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(text)
    }
}

/// The client failed, and for want of authorization (not, say, a connection error).
#[track_caller]
pub(crate) fn refused(result: Result<String, String>, what: &str) {
    match result {
        Ok(out) => panic!("{what}: succeeded, but must be refused:\n{out}"),
        Err(err) => {
            let lower = err.to_lowercase();
            assert!(
                ["unauthorized", "denied", "invalid username/password"]
                    .iter()
                    .any(|w| lower.contains(w)),
                "{what}: failed, but not for want of authorization:\n{err}"
            );
        }
    }
}

pub(crate) fn clients_available() -> bool {
    berth_test_support::require(
        "podman and skopeo",
        has_program("podman") && has_program("skopeo"),
    )
}

/// A one-file uncompressed tar (ustar), as an image layer.
pub(crate) fn tar_one_file(name: &str, content: &[u8]) -> Vec<u8> {
    let mut header = [0u8; 512];
    header[..name.len()].copy_from_slice(name.as_bytes());
    let octal = |field: &mut [u8], value: u64| {
        let s = format!("{value:0width$o}\0", width = field.len() - 1);
        field.copy_from_slice(s.as_bytes());
    };
    octal(&mut header[100..108], 0o644);
    octal(&mut header[108..116], 0);
    octal(&mut header[116..124], 0);
    octal(&mut header[124..136], content.len() as u64);
    octal(&mut header[136..148], 1_700_000_000);
    header[156] = b'0';
    header[257..263].copy_from_slice(b"ustar\0");
    header[263..265].copy_from_slice(b"00");
    header[148..156].copy_from_slice(b"        ");
    let sum: u32 = header.iter().map(|b| u32::from(*b)).sum();
    let s = format!("{sum:06o}\0 ");
    header[148..156].copy_from_slice(s.as_bytes());
    let mut tar = header.to_vec();
    tar.extend_from_slice(content);
    tar.resize(tar.len().div_ceil(512) * 512 + 1024, 0);
    tar
}

/// An OCI image layout at `dir` with one image tagged `v1`: one file in one layer.
pub(crate) fn write_oci_layout(dir: &Path, content: &str) {
    let blobs: PathBuf = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();
    let put = |data: &[u8]| {
        let d = Digest::sha256(data);
        std::fs::write(blobs.join(d.hex()), data).unwrap();
        (d.to_string(), data.len())
    };
    let layer = tar_one_file("hello.txt", content.as_bytes());
    let (layer_digest, layer_size) = put(&layer);
    let config = json!({
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = put(&serde_json::to_vec(&config).unwrap());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer_size}],
    });
    let (manifest_digest, manifest_size) = put(&serde_json::to_vec(&manifest).unwrap());
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "v1"},
        }],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}
