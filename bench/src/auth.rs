//! Token key material shared by both registries, and the tokens the clients present.
//!
//! The key is made with the `openssl` CLI rather than in Rust on purpose: Distribution
//! needs a certificate for its `rootcertbundle`, and openssl is the neutral tool both sides
//! accept, so neither registry's key handling is favoured.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use berth_token::{Access, Issuer, SigningKey};

/// Token issuer name both registries are configured to trust.
pub const ISSUER: &str = "berth-bench";
/// Token audience; both registries call it the service.
pub const SERVICE: &str = "container_registry";
/// Realm announced in challenges. Nothing listens there: the bench mints tokens itself.
pub const REALM: &str = "http://127.0.0.1:1/jwt/auth";

/// The ES256 key pair on disk plus an issuer signing with it.
pub struct Keys {
    /// Self-signed certificate of the public key (Distribution's `rootcertbundle`).
    pub cert: PathBuf,
    /// SPKI PEM of the public key (Berth's `token_public_key_file`).
    pub public: PathBuf,
    issuer: Issuer,
}

impl Keys {
    /// Generates a P-256 key, its certificate and public PEM in `dir` with openssl.
    pub async fn create(dir: &Path) -> anyhow::Result<Self> {
        let sec1 = dir.join("key.sec1.pem");
        let key = dir.join("key.pem");
        let cert = dir.join("cert.pem");
        let public = dir.join("pub.pem");
        let s = |p: &Path| p.display().to_string();
        openssl(&[
            "ecparam",
            "-name",
            "prime256v1",
            "-genkey",
            "-noout",
            "-out",
            &s(&sec1),
        ])
        .await?;
        openssl(&[
            "pkcs8",
            "-topk8",
            "-nocrypt",
            "-in",
            &s(&sec1),
            "-out",
            &s(&key),
        ])
        .await?;
        openssl(&[
            "req",
            "-new",
            "-x509",
            "-key",
            &s(&key),
            "-out",
            &s(&cert),
            "-days",
            "2",
            "-subj",
            "/CN=berth-bench",
        ])
        .await?;
        openssl(&["pkey", "-in", &s(&key), "-pubout", "-out", &s(&public)]).await?;

        let pem = tokio::fs::read_to_string(&key)
            .await
            .with_context(|| format!("reading {}", key.display()))?;
        let signing = SigningKey::from_pkcs8_pem(&pem).context("parsing the openssl key")?;
        let issuer = Issuer::new(signing, ISSUER, SERVICE, Duration::from_secs(3600));
        Ok(Keys {
            cert,
            public,
            issuer,
        })
    }

    /// A one-hour token granting pull, push and delete on `repository`.
    pub fn token(&self, repository: &str) -> anyhow::Result<String> {
        let (token, _claims) = self
            .issuer
            .issue(
                Some("bench".into()),
                None,
                vec![Access::repository(repository, &["pull", "push", "delete"])],
            )
            .with_context(|| format!("minting a token for {repository}"))?;
        Ok(token)
    }
}

/// Runs `openssl <args>`, failing with its stderr if it does.
async fn openssl(args: &[&str]) -> anyhow::Result<()> {
    let out = tokio::process::Command::new("openssl")
        .args(args)
        .output()
        .await
        .context("running openssl (is it installed?)")?;
    anyhow::ensure!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(())
}
