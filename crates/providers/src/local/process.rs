//! Processes of local jobs: whether a process or process group still runs (zombies count as
//! gone), and stopping groups (TERM, then KILL after a grace period).

use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal};

fn pid_of(raw: u32) -> Option<Pid> {
    i32::try_from(raw).ok().and_then(Pid::from_raw)
}

/// `(state, process group)` of a process from `/proc/PID/stat`, where there is a `/proc`.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let _ppid = fields.next()?;
    let pgrp = fields.next()?.parse().ok()?;
    Some((state, pgrp))
}

fn has_proc() -> bool {
    Path::new("/proc/self/stat").exists()
}

/// Whether process `raw` runs. Zombies count as gone: orphans whose adopter does not reap them
/// (containers without an init) would otherwise look alive forever.
pub(super) fn process_alive(raw: u32) -> bool {
    if has_proc() {
        return proc_stat(raw).is_some_and(|(state, _)| state != 'Z' && state != 'X');
    }
    match pid_of(raw) {
        // EPERM: it exists but is not ours.
        Some(pid) => match rustix::process::test_kill_process(pid) {
            Ok(()) => true,
            Err(err) => err != rustix::io::Errno::SRCH,
        },
        None => false,
    }
}

/// Whether any process of group `raw` runs (zombies excluded, as in [`process_alive`]).
fn group_alive(raw: u32) -> bool {
    let Some(pgid) = pid_of(raw) else {
        return false;
    };
    if let Err(err) = rustix::process::test_kill_process_group(pgid) {
        return err != rustix::io::Errno::SRCH;
    }
    if !has_proc() {
        return true;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(proc_stat)
        .any(|(state, group)| group == raw && state != 'Z' && state != 'X')
}

/// Stops every process group in `groups`: TERM, then KILL for those still running after 3 s.
pub(super) fn stop_groups(groups: &[u32]) {
    for &pid in groups {
        if let Some(pgid) = pid_of(pid) {
            let _ = rustix::process::kill_process_group(pgid, Signal::TERM);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while groups.iter().any(|&p| group_alive(p)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    for &pid in groups.iter().filter(|&&p| group_alive(p)) {
        if let Some(pgid) = pid_of(pid) {
            let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_its_group_too() {
        let pid = std::process::id();
        assert!(process_alive(pid));
        if let Some((state, group)) = proc_stat(pid) {
            assert_ne!(state, 'Z');
            assert!(group_alive(group));
        }
        assert!(!process_alive(u32::MAX));
    }
}
