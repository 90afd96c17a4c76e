//! argon2id password hashing and verification on a bounded pool of reused work buffers.
//!
//! argon2id needs 19 MiB of working memory per hash (OWASP's parameters, the crate's
//! default). Allocating it per login made glibc keep the freed buffers around: four
//! concurrent password logins grew berth-auth from 37 MiB to about 1 GiB of resident memory
//! that never came back (measured with berth-token-bench). Here at most `SLOTS` hashes run
//! at once, each on a buffer allocated once and reused, so memory stays bounded at
//! `SLOTS` × 19 MiB and a burst of logins queues instead of growing the process. It also
//! caps the CPU that password guessing can take from token issuance.

use std::sync::{LazyLock, Mutex};

use anyhow::{Context, anyhow};
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

/// How many hashes may run at once (and how many buffers exist).
fn slots() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

struct Pool {
    slots: Semaphore,
    buffers: Mutex<Vec<Vec<Block>>>,
}

static POOL: LazyLock<Pool> = LazyLock::new(|| Pool {
    slots: Semaphore::new(slots()),
    buffers: Mutex::new(Vec::new()),
});

/// Run `f` on a blocking thread with a pooled argon2 buffer, at most `slots()` at once.
async fn with_buffer<R: Send + 'static>(
    f: impl FnOnce(&mut Vec<Block>) -> R + Send + 'static,
) -> anyhow::Result<R> {
    let permit = POOL.slots.acquire().await.context("password pool closed")?;
    let result = tokio::task::spawn_blocking(move || {
        let take = || POOL.buffers.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut buffer = take().unwrap_or_default();
        let r = f(&mut buffer);
        POOL.buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(buffer);
        r
    })
    .await
    .context("password task failed");
    drop(permit);
    result
}

/// Hash `password` with `ctx` and `salt` into `out`, growing `buffer` if it is too small.
fn compute(
    ctx: &Argon2<'_>,
    params: &Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
    buffer: &mut Vec<Block>,
) -> anyhow::Result<()> {
    if buffer.len() < params.block_count() {
        buffer.resize(params.block_count(), Block::default());
    }
    ctx.hash_password_into_with_memory(password, salt, out, buffer.as_mut_slice())
        .map_err(|e| anyhow!("argon2: {e}"))
}

fn hash_with(password: &str, buffer: &mut Vec<Block>) -> anyhow::Result<String> {
    let params = Params::default();
    let ctx = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_raw = salt
        .decode_b64(&mut salt_bytes)
        .map_err(|e| anyhow!("salt: {e}"))?;
    let mut out = vec![0u8; params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN)];
    compute(
        &ctx,
        &params,
        password.as_bytes(),
        salt_raw,
        &mut out,
        buffer,
    )?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(&params).map_err(|e| anyhow!("params: {e}"))?,
        salt: Some(salt.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

fn verify_with(password: &str, stored: &str, buffer: &mut Vec<Block>) -> anyhow::Result<bool> {
    let phc = PasswordHash::new(stored).map_err(|e| anyhow!("stored hash: {e}"))?;
    let algorithm = Algorithm::try_from(phc.algorithm).map_err(|e| anyhow!("algorithm: {e}"))?;
    let version = match phc.version {
        Some(v) => Version::try_from(v).map_err(|e| anyhow!("version: {e}"))?,
        None => Version::default(),
    };
    let params = Params::try_from(&phc).map_err(|e| anyhow!("params: {e}"))?;
    let expected = phc.hash.context("stored hash has no output")?;
    let mut salt_bytes = [0u8; 64];
    let salt = phc
        .salt
        .context("stored hash has no salt")?
        .decode_b64(&mut salt_bytes)
        .map_err(|e| anyhow!("salt: {e}"))?;
    let ctx = Argon2::new(algorithm, version, params.clone());
    let mut out = vec![0u8; expected.len()];
    compute(&ctx, &params, password.as_bytes(), salt, &mut out, buffer)?;
    Ok(expected.as_bytes().ct_eq(&out).into())
}

/// An argon2id hash (PHC string) of a password, with a random salt.
pub async fn hash(password: String) -> anyhow::Result<String> {
    with_buffer(move |buffer| hash_with(&password, buffer)).await?
}

/// A hash no password matches, verified against when the user does not exist so that a
/// login for an unknown name costs as long as one for a known name.
static DECOY: LazyLock<String> =
    LazyLock::new(|| hash_with(&crate::secrets::generate(""), &mut Vec::new()).unwrap_or_default());

/// Does `password` match the stored hash? `None` (no such user, or no password) still
/// spends one verification, so timing does not reveal which usernames exist.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    let real = stored.is_some();
    let hash = stored.unwrap_or_else(|| DECOY.clone());
    let ok = with_buffer(move |buffer| verify_with(&password, &hash, buffer))
        .await
        .and_then(|r| r);
    match ok {
        Ok(ok) => ok && real,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "password verification failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::PasswordVerifier;

    #[tokio::test]
    async fn hashes_are_argon2id_phc_and_verify_both_ways() {
        let h = hash("correct horse".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(verify("correct horse".into(), Some(h.clone())).await);
        assert!(!verify("wrong".into(), Some(h.clone())).await);
        assert!(!verify("correct horse".into(), None).await);
        // The crate's own verifier accepts our PHC string, and we accept its.
        let parsed = PasswordHash::new(&h).unwrap();
        assert!(
            Argon2::default()
                .verify_password(b"correct horse", &parsed)
                .is_ok()
        );
        let theirs = argon2::PasswordHasher::hash_password(
            &Argon2::default(),
            b"pw",
            &SaltString::generate(&mut rand::rngs::OsRng),
        )
        .unwrap()
        .to_string();
        assert!(verify("pw".into(), Some(theirs)).await);
    }

    #[tokio::test]
    async fn a_garbage_stored_hash_never_matches() {
        assert!(!verify("x".into(), Some("not a hash".into())).await);
    }
}
