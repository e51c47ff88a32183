//! Running external programs (notify scripts, `vrrp_script` checks, `MISC_CHECK`): each in its
//! own process group, as the configured user, killed with its whole group when it outlives its
//! time limit, so a script that forks a hung child cannot linger.

use std::{ffi::CString, time::Duration};

/// How one run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code (a signal death counts as failure, code -1).
    Exited(i32),
    /// It outlived its limit and its process group was killed.
    TimedOut,
    /// It could not be started.
    NotStarted,
}

impl Outcome {
    /// Exit code 0.
    pub fn success(self) -> bool {
        self == Outcome::Exited(0)
    }
}

/// A command ready to run: program, arguments, and the ids it runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Program and arguments.
    pub argv: Vec<String>,
    /// uid and gid to run as (None: ours).
    pub ids: Option<(u32, u32)>,
}

/// Runs `job` in its own process group, killing the group if it outlives `timeout`.
pub async fn run(job: &Job, timeout: Duration) -> Outcome {
    let Some(program) = job.argv.first() else {
        return Outcome::NotStarted;
    };
    let mut command = tokio::process::Command::new(program);
    command
        .args(&job.argv[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if let Some((uid, gid)) = job.ids {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                if libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(gid) != 0
                    || libc::setuid(uid) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            tracing::error!(script = %program, error = %e, "script did not start");
            return Outcome::NotStarted;
        }
    };
    let pgid = child.id();
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => Outcome::Exited(status.code().unwrap_or(-1)),
        Ok(Err(e)) => {
            tracing::warn!(script = %program, error = %e, "waiting for a script");
            Outcome::Exited(-1)
        }
        Err(_) => {
            if let Some(pgid) = pgid {
                // SAFETY: kill has no memory preconditions; the group is the script's own.
                unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
            }
            let _ = child.wait().await;
            Outcome::TimedOut
        }
    }
}

/// The uid and gid of `user` (its primary group unless `group` is given).
pub fn user_ids(user: &str, group: Option<&str>) -> Option<(u32, u32)> {
    let name = CString::new(user).ok()?;
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: non-null, valid until the next getpw* call, which this thread does not make.
    let (uid, mut gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    if let Some(group) = group {
        let name = CString::new(group).ok()?;
        // SAFETY: as above, for getgrnam.
        let gr = unsafe { libc::getgrnam(name.as_ptr()) };
        if gr.is_null() {
            return None;
        }
        // SAFETY: non-null.
        gid = unsafe { (*gr).gr_gid };
    }
    Some((uid, gid))
}

/// The ids a script runs as: its own `user [group]`, else the default (`script_user`, else
/// keepalived's `keepalived_script` when the system has it), else root. `Err` names a user or
/// group that does not exist.
pub fn script_ids(
    user: Option<&str>,
    group: Option<&str>,
    default: Option<&(String, Option<String>)>,
) -> Result<Option<(u32, u32)>, String> {
    let chosen = match user {
        Some(user) => Some((user.to_string(), group.map(str::to_string))),
        None => default.cloned(),
    };
    match chosen {
        None => Ok(None),
        Some((user, group)) => user_ids(&user, group.as_deref()).map(Some).ok_or(user),
    }
}

/// The default script user: `script_user`, else `keepalived_script` if the system has it.
pub fn default_user(
    script_user: Option<&(String, Option<String>)>,
) -> Option<(String, Option<String>)> {
    script_user
        .cloned()
        .or_else(|| user_ids("keepalived_script", None).map(|_| ("keepalived_script".into(), None)))
}
