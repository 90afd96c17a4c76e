//! In-process costs of the two cryptographic steps of a token request: one ES256 token and
//! one SHA-256 of a personal access token, measured on one core before the server starts.

use std::time::{Duration, Instant};

use anyhow::Context;
use sha2::{Digest, Sha256};

use crate::SERVICE;

/// Microseconds per operation of the two cryptographic steps of a token request.
pub struct Micro {
    /// One ES256 token, claims to signature.
    pub sign_us: f64,
    /// One SHA-256 of a PAT, hex-encoded.
    pub sha_us: f64,
}

/// One ES256 token (claims built, serialised and signed) and one SHA-256 of a PAT, each in
/// a loop for about a second.
pub fn micro_benchmarks() -> anyhow::Result<Micro> {
    let issuer = berth_token::Issuer::new(
        berth_token::SigningKey::generate(),
        "berth",
        SERVICE,
        Duration::from_secs(300),
    );
    let sign = || {
        issuer
            .issue(
                Some("dev".into()),
                Some("personal_access_token".into()),
                vec![berth_token::Access::repository(
                    "bench/app",
                    &["pull", "push"],
                )],
            )
            .map(|t| std::hint::black_box(t.0).len())
            .context("signing")
    };
    sign()?; // warm-up
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        sign()?;
        n += 1;
    }
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;

    // The same shape as a PAT: prefix + 32 URL-safe characters; stored as lowercase hex.
    let token = "bpat-AbCdEfGhIjKlMnOpQrStUvWxYz012345";
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..1024 {
            let digest = hex::encode(Sha256::digest(std::hint::black_box(token).as_bytes()));
            std::hint::black_box(digest);
        }
        n += 1024;
    }
    let sha_us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    Ok(Micro { sign_us, sha_us })
}
