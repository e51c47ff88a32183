//! One `track_file`: its number, read again whenever the file (or its directory entry) changes,
//! as inotify reports; no polling. The directory is watched, so a file replaced by rename
//! (how editors and `mv` write) is seen too.

use std::{
    ffi::CString,
    os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd},
    path::Path,
};

use tokio::{io::unix::AsyncFd, sync::mpsc, task::JoinHandle};

use super::Update;
use crate::config::TrackFile;

/// Writes `init_file`'s value where asked and returns the number the file holds now.
pub(super) fn prepare(def: &TrackFile) -> i64 {
    if let Some((value, overwrite)) = def.init
        && (overwrite || !Path::new(&def.path).exists())
        && let Err(e) = std::fs::write(&def.path, format!("{value}\n"))
    {
        tracing::warn!(file = %def.path, error = %e, "init_file could not write the file");
    }
    read(&def.path)
}

/// The number in the file: 0 when it is missing or holds no number, as keepalived.
fn read(path: &str) -> i64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            let word = text.split_whitespace().next()?.to_string();
            word.parse().ok()
        })
        .unwrap_or(0)
}

/// Starts the watcher; `value` is what the file held when prepared.
pub(super) fn spawn(
    def: TrackFile,
    mut value: i64,
    tx: mpsc::UnboundedSender<Update>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let watch = match Watch::new(&def.path) {
            Ok(w) => w,
            Err(e) => {
                tracing::error!(file = %def.path, error = %e, "cannot watch the tracked file's directory: its value stays {value}");
                return;
            }
        };
        loop {
            if watch.changed().await.is_err() {
                return;
            }
            let now = read(&def.path);
            if now != value {
                value = now;
                let update = Update::File {
                    name: def.name.clone(),
                    value,
                };
                if tx.send(update).is_err() {
                    return;
                }
            }
        }
    })
}

/// An inotify watch on a file's directory.
struct Watch {
    fd: AsyncFd<OwnedFd>,
}

impl Watch {
    fn new(path: &str) -> std::io::Result<Self> {
        let dir = Path::new(path)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let dir = CString::new(dir.as_os_str().as_encoded_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: plain syscalls; the fd is owned right away.
        let raw = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if raw < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: raw is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let mask = libc::IN_CLOSE_WRITE
            | libc::IN_MODIFY
            | libc::IN_MOVED_TO
            | libc::IN_CREATE
            | libc::IN_DELETE
            | libc::IN_MOVED_FROM;
        // SAFETY: dir is a valid C string.
        if unsafe { libc::inotify_add_watch(fd.as_raw_fd(), dir.as_ptr(), mask) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: the descriptor is moved into the AsyncFd, which deregisters it before
        // dropping it.
        Ok(Self {
            fd: unsafe { AsyncFd::register(fd) }?,
        })
    }

    /// Waits for events and drains them.
    async fn changed(&self) -> std::io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let mut buf = [0u8; 4096];
            // SAFETY: reading into our own buffer.
            let n = unsafe {
                libc::read(
                    self.fd.get_ref().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                )
            };
            if n > 0 {
                return Ok(());
            }
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::WouldBlock {
                guard.clear_ready();
                continue;
            }
            return Err(e);
        }
    }
}
