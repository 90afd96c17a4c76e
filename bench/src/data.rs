//! Test data and the hardware bounds it is measured against: the big blob files
//! (deterministic pseudo-random bytes, digested once up front), the small-image contents,
//! and the disk-fsync and sha256 speeds that cap what any registry can reach on a push.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use sha2::{Digest, Sha256};

/// Buffer size for generating and probing; large enough that syscalls do not matter.
const BUF: usize = 1 << 20;

/// A blob stored in a file, with its size and digest computed once.
#[derive(Debug, Clone)]
pub struct BlobFile {
    /// Where the bytes are.
    pub path: PathBuf,
    /// Length in bytes.
    pub size: u64,
    /// `sha256:<hex>`.
    pub digest: String,
}

/// The two big blobs: one pushed monolithically, one pushed in chunks and then pulled.
/// They differ so the second push cannot be deduplicated against the first.
#[derive(Debug, Clone)]
pub struct Blobs {
    /// Pushed with POST + one PUT.
    pub monolithic: BlobFile,
    /// Pushed with POST + PATCH chunks + PUT, then pulled.
    pub chunked: BlobFile,
}

/// Speeds that bound the push figures, measured once on this machine.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Bytes written for the disk probe.
    pub disk_bytes: u64,
    /// Sequential write + fsync to the scratch directory's disk, MB/s.
    pub disk_mbps: f64,
    /// Bytes hashed for the sha256 probe.
    pub sha_bytes: u64,
    /// sha256 over memory, one core, MB/s.
    pub sha_mbps: f64,
}

/// xorshift64: fast, deterministic, and good enough that no filesystem or transport
/// compresses the data; `rand` would add a dependency for nothing.
pub struct XorShift(u64);

impl XorShift {
    /// A generator from `seed` (zero is remapped, since xorshift would stay at zero).
    pub fn new(seed: u64) -> Self {
        XorShift(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// Fills `buf` with pseudo-random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let n = rest.len();
        rest.copy_from_slice(&self.next().to_le_bytes()[..n]);
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Writes both big blobs of `size` bytes into `dir`, hashing while writing.
pub async fn prepare_blobs(dir: &Path, size: u64) -> anyhow::Result<Blobs> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let monolithic = generate(&dir.join("blob-monolithic.bin"), size, 1)?;
        let chunked = generate(&dir.join("blob-chunked.bin"), size, 2)?;
        eprintln!(
            "generated 2 blobs of {} in {:.1} s",
            size_label(size),
            started.elapsed().as_secs_f64()
        );
        Ok(Blobs {
            monolithic,
            chunked,
        })
    })
    .await?
}

/// Writes `size` pseudo-random bytes from `seed` to `path` and returns its digest.
fn generate(path: &Path, size: u64, seed: u64) -> anyhow::Result<BlobFile> {
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = BufWriter::with_capacity(BUF, file);
    let mut rng = XorShift::new(seed);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; BUF];
    let mut left = size;
    while left > 0 {
        let n = usize::try_from(left.min(BUF as u64)).unwrap_or(BUF);
        rng.fill(&mut buf[..n]);
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(BlobFile {
        path: path.to_path_buf(),
        size,
        digest: format!("sha256:{}", hex::encode(hasher.finalize())),
    })
}

/// Measures the disk (write `disk_bytes` with a 1 MiB buffer, then fsync) and sha256 (256
/// MiB in memory). Both cap a push: every registry must hash and persist every byte.
pub async fn measure_bounds(dir: &Path, disk_bytes: u64) -> anyhow::Result<Bounds> {
    let path = dir.join("disk-probe.bin");
    tokio::task::spawn_blocking(move || {
        let buf = {
            let mut b = vec![0u8; BUF];
            XorShift::new(3).fill(&mut b);
            b
        };
        let started = Instant::now();
        let mut file =
            File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut left = disk_bytes;
        while left > 0 {
            let n = usize::try_from(left.min(BUF as u64)).unwrap_or(BUF);
            file.write_all(&buf[..n])?;
            left -= n as u64;
        }
        file.sync_all()?;
        let disk_secs = started.elapsed().as_secs_f64();
        drop(file);
        std::fs::remove_file(&path)?;

        let sha_bytes: u64 = 256 << 20;
        let mem = vec![0x5Au8; usize::try_from(sha_bytes)?];
        let started = Instant::now();
        let d = Sha256::digest(&mem);
        let sha_secs = started.elapsed().as_secs_f64();
        // Use the digest so the hashing cannot be optimised away.
        std::hint::black_box(d);
        Ok(Bounds {
            disk_bytes,
            disk_mbps: mbps(disk_bytes, disk_secs),
            sha_bytes,
            sha_mbps: mbps(sha_bytes, sha_secs),
        })
    })
    .await?
}

/// Flushes every dirty page system-wide (`sync`), so writeback left by one phase is not
/// charged to the next. Best effort: a missing `sync` only makes figures noisier.
pub async fn sync() {
    let _ = tokio::process::Command::new("sync").status().await;
}

/// Decimal megabytes per second, the unit every throughput figure uses.
pub fn mbps(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / 1e6 / secs.max(1e-9)
}

/// "1 GiB" or "64 MiB" for labels.
pub fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 30 && bytes.is_multiple_of(1 << 30) {
        format!("{} GiB", bytes >> 30)
    } else if bytes.is_multiple_of(1 << 20) {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{bytes} B")
    }
}
