//! A notify FIFO (keepalived's `notify_fifo`): created when absent, written without ever
//! blocking. A line that cannot be written at once (no reader, or a reader that stopped
//! reading and let the pipe fill) is dropped and counted.

use std::{
    ffi::CString,
    fs::File,
    io::Write as _,
    os::unix::{ffi::OsStrExt as _, fs::OpenOptionsExt as _},
    path::PathBuf,
};

/// One FIFO.
pub struct Fifo {
    path: PathBuf,
    file: Option<File>,
    /// Lines written.
    pub lines: u64,
    /// Lines dropped.
    pub dropped: u64,
}

impl Fifo {
    /// Creates the FIFO (mode 0600) unless something exists at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if !path.exists() {
            match CString::new(path.as_os_str().as_bytes()) {
                // SAFETY: the path is NUL-terminated and outlives the call.
                Ok(c) if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } == 0 => {}
                _ => tracing::warn!(
                    fifo = %path.display(),
                    error = %std::io::Error::last_os_error(),
                    "cannot create the notify FIFO"
                ),
            }
        }
        Self {
            path,
            file: None,
            lines: 0,
            dropped: 0,
        }
    }

    /// Writes one line (shorter than PIPE_BUF, so it goes in whole or not at all).
    pub fn write_line(&mut self, line: &str) {
        if self.file.is_none() {
            // O_NONBLOCK: opening fails at once (ENXIO) when nobody reads.
            self.file = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NONBLOCK)
                .open(&self.path)
                .ok();
        }
        let written = match &mut self.file {
            Some(file) => file.write_all(line.as_bytes()),
            None => Err(std::io::ErrorKind::NotConnected.into()),
        };
        match written {
            Ok(()) => self.lines += 1,
            Err(e) => {
                self.dropped += 1;
                if e.kind() != std::io::ErrorKind::WouldBlock {
                    // No reader (any more): reopen on the next line.
                    self.file = None;
                }
                tracing::debug!(fifo = %self.path.display(), error = %e, "notify FIFO line dropped");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn lines_reach_a_reader_and_are_dropped_without_one_never_blocking() {
        let path = std::env::temp_dir().join(format!("vrrp-fifo-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let mut fifo = Fifo::new(&path);
        fifo.write_line("INSTANCE \"VI_1\" MASTER 100\n");
        assert_eq!((fifo.lines, fifo.dropped), (0, 1), "no reader yet");

        let mut reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        fifo.write_line("INSTANCE \"VI_1\" BACKUP 100\n");
        let mut got = String::new();
        reader.read_to_string(&mut got).ok();
        assert_eq!(got, "INSTANCE \"VI_1\" BACKUP 100\n");

        // A reader that stops reading: the pipe fills, lines drop, nothing blocks.
        let line = format!("INSTANCE \"{}\" MASTER 100\n", "x".repeat(200));
        for _ in 0..1000 {
            fifo.write_line(&line);
        }
        assert!(fifo.dropped > 1, "a full pipe must drop lines");
        assert!(fifo.lines > 2);
        drop(reader);
        fifo.write_line(&line);
        std::fs::remove_file(&path).unwrap();
    }
}
