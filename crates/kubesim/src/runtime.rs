//! What the fake kubelet keeps per pod and container while it runs them: container logs (current
//! and previous run, size-capped) and the process groups of started pods, with the kill that ends
//! a group.
//!
//! It holds plain data so that the cluster can own it without depending on the kubelet itself.

use std::collections::{HashMap, VecDeque};

use tokio::sync::watch;

use crate::util::now_rfc3339_nanos;

/// Most bytes of log kept per container run; older lines are dropped.
const LOG_LIMIT_BYTES: usize = 8 << 20;

/// The log of one container run.
#[derive(Debug, Default, Clone)]
pub(crate) struct LogBuffer {
    /// (timestamp, bytes of the line including its newline).
    pub lines: VecDeque<(String, Vec<u8>)>,
    bytes: usize,
    /// How many lines were dropped from the front (so followers can keep their place).
    pub dropped: u64,
    /// The run ended; no more lines will come.
    pub finished: bool,
}

impl LogBuffer {
    /// Appends one line (stamped now), dropping the oldest lines past the size cap.
    pub(crate) fn push(&mut self, line: Vec<u8>) {
        self.bytes += line.len();
        self.lines.push_back((now_rfc3339_nanos(), line));
        while self.bytes > LOG_LIMIT_BYTES {
            if let Some((_, dropped)) = self.lines.pop_front() {
                self.bytes -= dropped.len();
                self.dropped += 1;
            }
        }
    }
}

/// The current and previous run of one container.
#[derive(Debug, Default, Clone)]
pub(crate) struct ContainerLogs {
    pub current: LogBuffer,
    pub previous: Option<LogBuffer>,
}

/// Bookkeeping for a pod the kubelet has started.
#[derive(Debug)]
pub(crate) struct PodRuntime {
    /// Set to `true` to stop the pod's containers (no more starts or restarts).
    pub cancel: watch::Sender<bool>,
    /// Process group ids by container name.
    pub groups: HashMap<String, i32>,
    /// Deleted gracefully: its containers got `SIGTERM` and none starts or restarts again.
    pub terminating: bool,
    /// The pod's IP (a loopback address of its own).
    pub ip: String,
}

/// Asks a process group to stop with `SIGTERM` (graceful termination).
pub(crate) fn term_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::TERM);
    }
}

/// Whether any process of the group still exists.
pub(crate) fn group_alive(pgid: i32) -> bool {
    rustix::process::Pid::from_raw(pgid)
        .is_some_and(|pid| rustix::process::test_kill_process_group(pid).is_ok())
}

/// Kills a process group with `SIGKILL`.
pub(crate) fn kill_group(pgid: i32) {
    if let Some(pid) = rustix::process::Pid::from_raw(pgid) {
        // The group may already be gone; nothing to do then.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}
