//! Blocking filesystem steps of [`super::FsBlobStore`], run on the blocking pool: the durable
//! commit and the directory walks.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use berth_core::Digest;

use super::valid_upload_id;
use crate::{Result, StoreError};

/// Make `upload` the blob at `dest`, durably and atomically.
///
/// `dest` is `<blobs>/<alg>/<xx>/<hex>`; its two parent levels are created on demand.
pub(super) fn commit(upload: &Path, dest: &Path) -> Result<()> {
    let data = match fs::File::open(upload) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::UploadNotFound),
        Err(e) => return Err(e.into()),
    };
    let upload_len = data.metadata()?.len();
    match fs::metadata(dest) {
        Ok(existing) if existing.is_file() && existing.len() == upload_len => {
            // Same digest, same size: the bytes are already there. Drop the duplicate.
            remove_if_present(upload)?;
            return Ok(());
        }
        Ok(existing) => {
            // A blob whose size disagrees with its digest is damaged; the caller verified
            // this upload's hash, so replacing the old file repairs it.
            tracing::warn!(path = %dest.display(), size = existing.len(), expected = upload_len,
                "replacing a damaged blob file on commit");
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    install(data, upload, dest)
}

/// Fsync `data` (the open file at `upload`), then rename it to `dest` and persist the
/// directory entry.
fn install(data: fs::File, upload: &Path, dest: &Path) -> Result<()> {
    // The data must be on disk before the name points at it, or a crash could leave a blob
    // with its full name but not its full content.
    data.sync_all()?;
    drop(data);
    let prefix_dir = parent(dest)?;
    ensure_dir(parent(prefix_dir)?)?;
    ensure_dir(prefix_dir)?;
    match fs::rename(upload, dest) {
        Ok(()) => {}
        // Deleted between the open above and here.
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(StoreError::UploadNotFound),
        Err(e) => return Err(e.into()),
    }
    // Persist the new directory entry itself.
    sync_dir(prefix_dir)?;
    Ok(())
}

/// Write `bytes` to `tmp` and commit it as `dest` (see [`commit`]); nothing is written when
/// `dest` already holds a blob of that size.
pub(super) fn put(tmp: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    if fs::metadata(dest).is_ok_and(|m| m.is_file() && m.len() == bytes.len() as u64) {
        return Ok(());
    }
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(tmp)
        .and_then(|mut f| io::Write::write_all(&mut f, bytes).map(|()| f));
    // The same handle is synced and renamed: no second open of a file just written.
    let result = written
        .map_err(StoreError::from)
        .and_then(|f| install(f, tmp, dest));
    if result.is_err() {
        // The write already failed and that error is what the caller gets; a temporary file
        // left behind is only litter (`berth-gc check` finds stale ones), so log it.
        if let Err(e) = remove_if_present(tmp) {
            tracing::warn!(path = %tmp.display(), error = %e, "removing a failed blob write's temporary file");
        }
    }
    result
}

fn parent(path: &Path) -> io::Result<&Path> {
    path.parent()
        .ok_or_else(|| io::Error::other(format!("{} has no parent directory", path.display())))
}

/// Create `dir` if missing (its parent must exist). A directory created here is made durable
/// by syncing its parent, so a blob renamed into it later cannot vanish with it in a crash.
pub(super) fn ensure_dir(dir: &Path) -> io::Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => sync_dir(parent(dir)?),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Flush a directory's entries to disk.
pub(super) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)?.sync_all()
    }
    // Other platforms cannot open a directory as a file; renames there are as durable as the
    // filesystem makes them.
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Remove a file, treating "already gone" as success.
pub(super) fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Every committed digest under `blobs`, sorted. Stray files that do not fit the layout are
/// skipped with a warning rather than failing the whole walk.
pub(super) fn list(blobs: &Path) -> io::Result<Vec<Digest>> {
    let mut out = Vec::new();
    for alg in subdirs(blobs)? {
        for prefix in subdirs(&alg)? {
            for entry in fs::read_dir(&prefix)? {
                let entry = entry?;
                if !entry.file_type()?.is_file() {
                    continue;
                }
                match parse_blob_path(&alg, &prefix, &entry.path()) {
                    Some(d) => out.push(d),
                    None => {
                        tracing::warn!(path = %entry.path().display(), "stray file in blob storage")
                    }
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

fn subdirs(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// The digest a file at `<alg>/<prefix>/<hex>` stands for, if the path is consistent.
fn parse_blob_path(alg: &Path, prefix: &Path, file: &Path) -> Option<Digest> {
    let alg = alg.file_name()?.to_str()?;
    let prefix = prefix.file_name()?.to_str()?;
    let hex = file.file_name()?.to_str()?;
    let digest: Digest = format!("{alg}:{hex}").parse().ok()?;
    (digest.hex().get(..2) == Some(prefix)).then_some(digest)
}

/// Ids of uploads under `uploads` last modified at least `older_than` before `now`.
pub(super) fn stale_uploads(
    uploads: &Path,
    older_than: Duration,
    now: SystemTime,
) -> io::Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(uploads)? {
        let entry = entry?;
        let Some(id) = entry.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !valid_upload_id(&id) {
            continue;
        }
        let modified = match entry.metadata().and_then(|m| m.modified()) {
            Ok(t) => t,
            // Removed while we were walking: not ours to report any more.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        // A modification time in the future (clock steps) counts as fresh.
        if now
            .duration_since(modified)
            .is_ok_and(|age| age >= older_than)
        {
            out.push(id);
        }
    }
    out.sort();
    Ok(out)
}
