//! [`DataDirLock`]: one `agm serve` per data dir.
//!
//! Two servers on one data dir would both report ready while their cooldown and state
//! writes overwrite each other. The server holds an exclusive lock on [`LOCK_FILE`] for
//! its whole life; the CLI's other commands never take it, so they keep working beside
//! a running server (SQLite's own locking orders their writes).
//!
//! The file holds the holder's process id, for the message a second server prints. It
//! is left in place when the lock is released: removing it would let a third process
//! lock a new file while a second still holds the old one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::error::StoreError;
use crate::store::create_data_dir;

/// The lock file in the data dir.
pub const LOCK_FILE: &str = "agm.lock";

/// An exclusive lock on a data dir, released when dropped (or when the process ends,
/// however it ends: the OS drops the lock with the file).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// Creates the data dir if needed (mode 0700) and locks it without waiting. A data
    /// dir that another process holds is [`StoreError::DataDirInUse`], naming its pid.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, StoreError> {
        create_data_dir(data_dir)?;
        let path = data_dir.join(LOCK_FILE);
        let io_error = |action, source| StoreError::Io {
            action,
            path: path.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&path).map_err(|e| io_error("open", e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::DataDirInUse {
                    pid: holder_pid(&mut file),
                    dir: data_dir.to_path_buf(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io_error("lock", source)),
        }
        // Only the holder writes, so a reader sees the current holder's pid (or, for a
        // moment after the lock is taken, nothing).
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()))
            .and_then(|()| file.flush())
            .map_err(|e| io_error("write", e))?;
        Ok(DataDirLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The pid the holder wrote into the lock file, if it has.
fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_a_released_one_can_be_taken_again() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let lock = DataDirLock::acquire(&dir).unwrap();
        assert_eq!(lock.path(), dir.join(LOCK_FILE));
        // flock locks belong to the open file, so a second open in one process conflicts.
        let err = DataDirLock::acquire(&dir).unwrap_err();
        let pid = std::process::id();
        assert!(
            matches!(err, StoreError::DataDirInUse { pid: Some(p), .. } if p == pid),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "another agm serve (pid {pid}) is using the data dir {}: stop it first, or give this one another data dir (AGM_DATA_DIR)",
                dir.display()
            )
        );
        drop(lock);
        let again = DataDirLock::acquire(&dir).unwrap();
        drop(again);
    }

    #[cfg(unix)]
    #[test]
    fn the_lock_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(tmp.path()).unwrap();
        let mode = std::fs::metadata(lock.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
