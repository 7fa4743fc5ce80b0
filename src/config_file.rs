//! A remote config on disk, as the offline client and the client's config
//! cache keep it: the config JSON byte for byte, nothing around it.
//!
//! Reading happens off the actix thread (a slow or network disk must not
//! stall every actor of the System) and goes through the crate's one JSON
//! check. Writing is atomic: a temporary file in the same directory,
//! written and fsynced, renamed over the target, then the directory fsynced,
//! so that a crash leaves either the old config or the new one, never half
//! of one. The file is owner-only (0600 on Unix) from the moment it exists:
//! configs hold secrets.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::json::{json_text, JsonError};

/// A config file's bytes and whether they are one JSON document.
pub(crate) struct JsonFile {
    pub(crate) data: Bytes,
    pub(crate) check: Result<(), JsonError>,
}

impl JsonFile {
    fn read(path: &Path) -> io::Result<JsonFile> {
        let data = Bytes::from(std::fs::read(path)?);
        let check = json_text(&data).map(|_| ());
        Ok(JsonFile { data, check })
    }
}

/// Reads `path` and checks its JSON off the actix thread: on the runtime's
/// blocking pool, or inline when there is no runtime (nothing to stall).
pub(crate) async fn read(path: &Path) -> io::Result<JsonFile> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return JsonFile::read(path);
    };
    let owned = path.to_owned();
    match runtime.spawn_blocking(move || JsonFile::read(&owned)).await {
        Ok(read) => read,
        Err(e) => Err(io::Error::other(format!(
            "the reading task did not finish: {e}"
        ))),
    }
}

/// Replaces `path` with `data` atomically, owner-only. Blocking: call it
/// off the actix thread. The error names the step and the file that failed;
/// nothing of `data` is in it.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let temp = dir.join(temp_name(name));
    let result = write_new(&temp, data)
        .and_then(|()| {
            std::fs::rename(&temp, path).map_err(|e| {
                context(
                    e,
                    format!("cannot rename {} to {}", temp.display(), path.display()),
                )
            })
        })
        .and_then(|()| sync_dir(dir));
    if result.is_err() {
        // Gone already when the rename succeeded; nothing to report then.
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// A temporary file older than this is no write under way: a write takes
/// milliseconds, and its writer is gone or stuck.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(60);

/// Removes the temporary files [`write_atomic`] left beside `path` when a
/// crash came between writing and renaming (they hold a config): those named
/// `.<name>.<pid>.<seq>.tmp` whose writer is not a live process (checked on
/// Linux; this process has not written `path` yet when the cache is opened)
/// or that are older than [`STALE_TEMP_AGE`]. Nothing else is touched.
/// Blocking: call it off the actix thread. Returns the files removed.
pub(crate) fn remove_stale_temps(path: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = format!(".{name}.");
    let mut removed = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        // No directory, no leftovers (the read then finds no cache).
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(context(e, format!("cannot list {}", dir.display()))),
    };
    for entry in entries {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(pid) = file_name
            .to_str()
            .and_then(|n| n.strip_prefix(&prefix))
            .and_then(|rest| rest.strip_suffix(".tmp"))
            .and_then(|rest| rest.split_once('.'))
            .filter(|(_, seq)| !seq.is_empty() && seq.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|at| at.elapsed().ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        if old || !writer_alive(pid) {
            let temp = entry.path();
            std::fs::remove_file(&temp)
                .map_err(|e| context(e, format!("cannot remove {}", temp.display())))?;
            removed.push(temp);
        }
    }
    Ok(removed)
}

/// Whether process `pid` may still be writing (always, where it cannot be
/// told; never for this process, which has not written yet).
fn writer_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return false;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// A name no other write (of this or another process) uses at the same time.
fn temp_name(name: &std::ffi::OsStr) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let mut temp = std::ffi::OsString::from(".");
    temp.push(name);
    temp.push(format!(".{}.{seq}.tmp", std::process::id()));
    PathBuf::from(temp)
}

fn write_new(temp: &Path, data: &[u8]) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        // Set at creation, so the secrets are never readable by others,
        // not even for a moment (the umask can only take bits away).
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(temp)
        .map_err(|e| context(e, format!("cannot create {}", temp.display())))?;
    file.write_all(data)
        .and_then(|()| file.sync_all())
        .map_err(|e| context(e, format!("cannot write {}", temp.display())))
}

/// Makes the rename itself durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| context(e, format!("cannot sync directory {}", dir.display())))
    }
    #[cfg(not(unix))]
    {
        // Directories cannot be opened as files here; the rename is as
        // durable as the platform makes it.
        let _ = dir;
        Ok(())
    }
}

fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "isp-cluster-config-file-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn write_replaces_the_file_owner_only_and_leaves_no_temporary_file() {
        let dir = temp_dir("replace");
        let path = dir.join("config.json");
        std::fs::write(&path, "{\"old\":true}").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let open = std::fs::Permissions::from_mode(0o644);
            std::fs::set_permissions(&path, open).unwrap();
        }
        write_atomic(&path, b"{\"new\":true}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"new\":true}");
        assert_eq!(entries(&dir), ["config.json"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_names_the_step_and_leaves_nothing_behind() {
        let dir = temp_dir("fail");
        let path = dir.join("missing").join("config.json");
        let err = write_atomic(&path, b"{\"password\":\"hunter2\"}").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().starts_with("cannot create "), "{err}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // A directory in the way of the rename: the temporary file goes.
        std::fs::create_dir(dir.join("config.json")).unwrap();
        let err = write_atomic(&dir.join("config.json"), b"{}").unwrap_err();
        assert!(err.to_string().starts_with("cannot rename "), "{err}");
        assert_eq!(entries(&dir), ["config.json"]);
        let err = write_atomic(Path::new("/"), b"{}").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn read_reports_the_json_check_with_the_bytes() {
        let dir = temp_dir("read");
        let good = dir.join("good.json");
        std::fs::write(&good, "{\"a\":1}").unwrap();
        let file = JsonFile::read(&good).unwrap();
        assert!(file.check.is_ok());
        assert_eq!(&file.data[..], b"{\"a\":1}");
        let bad = dir.join("bad.json");
        std::fs::write(&bad, b"{\"a\":\"\xff\"}").unwrap();
        assert!(matches!(
            JsonFile::read(&bad).unwrap().check,
            Err(JsonError::Utf8(_))
        ));
        let err = JsonFile::read(&dir.join("none.json")).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
