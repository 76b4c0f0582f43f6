//! Streaming a local job's logs: each node's log file read from where the last read stopped,
//! line by line, until the job ends when following.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::jobs::{JobMeta, NodeState, job_ids, jobs_dir, log_path, node_state, read_meta};
use crate::{LogLine, LogOptions, LogStream, ProviderError};

/// Reading position in one node's log.
struct NodeLog {
    rank: u32,
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    finished: bool,
}

struct LogState {
    job_dir: PathBuf,
    meta: JobMeta,
    nodes: Vec<NodeLog>,
    queue: VecDeque<Result<LogLine, ProviderError>>,
    follow: bool,
    done: bool,
    delay: Duration,
}

fn push_lines(queue: &mut VecDeque<Result<LogLine, ProviderError>>, node: &mut NodeLog, bytes: &[u8]) {
    node.partial.extend_from_slice(bytes);
    while let Some(end) = node.partial.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = node.partial.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line[..line.len() - 1]);
        queue.push_back(Ok(LogLine {
            node: node.rank,
            text: text.trim_end_matches('\r').to_string(),
        }));
    }
}

fn read_new(node: &mut NodeLog) -> std::io::Result<Vec<u8>> {
    let mut file = match File::open(&node.path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    file.seek(SeekFrom::Start(node.offset))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    node.offset += bytes.len() as u64;
    Ok(bytes)
}

impl LogState {
    /// Reads what is new in every unfinished node's log; returns whether anything was read.
    fn poll_files(&mut self) -> bool {
        let mut any = false;
        for node in self.nodes.iter_mut().filter(|n| !n.finished) {
            // Decide "finished" before reading, so everything written before the end is read.
            let finished = !self.follow
                || matches!(
                    node_state(&self.job_dir, node.rank, &self.meta),
                    NodeState::Exited(_) | NodeState::Lost
                );
            match read_new(node) {
                Ok(bytes) => {
                    any |= !bytes.is_empty();
                    push_lines(&mut self.queue, node, &bytes);
                }
                Err(err) => {
                    self.queue.push_back(Err(ProviderError::io(
                        format!("reading {}", node.path.display()),
                        err,
                    )));
                    node.finished = true;
                    continue;
                }
            }
            if finished {
                if !node.partial.is_empty() {
                    let text = String::from_utf8_lossy(&node.partial).to_string();
                    node.partial.clear();
                    self.queue.push_back(Ok(LogLine {
                        node: node.rank,
                        text,
                    }));
                }
                node.finished = true;
            }
        }
        if self.nodes.iter().all(|n| n.finished) {
            self.done = true;
        }
        any
    }
}

/// Streams job output per [`LogOptions`].
pub(super) fn log_stream(
    cluster_dir: &Path,
    cluster: &str,
    options: &LogOptions,
) -> Result<LogStream, ProviderError> {
    let ids = job_ids(cluster_dir)?;
    let id = match options.job {
        Some(id) => id,
        None => *ids.last().ok_or_else(|| ProviderError::NotFound {
            what: format!("a job on cluster {cluster:?}"),
        })?,
    };
    let job_dir = jobs_dir(cluster_dir).join(id.to_string());
    let meta = read_meta(&job_dir).ok_or_else(|| ProviderError::NotFound {
        what: format!("job {id} on cluster {cluster:?}"),
    })?;
    let ranks: Vec<u32> = match options.node {
        Some(rank) if rank < meta.num_nodes => vec![rank],
        Some(rank) => {
            return Err(ProviderError::NotFound {
                what: format!("node {rank} of job {id} on cluster {cluster:?}"),
            });
        }
        None => (0..meta.num_nodes).collect(),
    };
    let mut queue = VecDeque::new();
    let mut nodes = Vec::new();
    for rank in ranks {
        let mut node = NodeLog {
            rank,
            path: log_path(&job_dir, rank),
            offset: 0,
            partial: Vec::new(),
            finished: false,
        };
        if let Some(tail) = options.tail {
            let bytes = read_new(&mut node)
                .map_err(|err| ProviderError::io(format!("reading {}", node.path.display()), err))?;
            let mut lines = VecDeque::new();
            push_lines(&mut lines, &mut node, &bytes);
            let skip = lines.len().saturating_sub(tail);
            queue.extend(lines.into_iter().skip(skip));
        }
        nodes.push(node);
    }
    let state = LogState {
        job_dir,
        meta,
        nodes,
        queue,
        follow: options.follow,
        done: false,
        delay: Duration::from_millis(10),
    };
    let stream = futures::stream::unfold(state, |mut state| async move {
        loop {
            if let Some(item) = state.queue.pop_front() {
                return Some((item, state));
            }
            if state.done {
                return None;
            }
            if state.poll_files() {
                state.delay = Duration::from_millis(10);
            } else if !state.done {
                tokio::time::sleep(state.delay).await;
                state.delay = (state.delay * 2).min(Duration::from_millis(200));
            }
        }
    });
    Ok(Box::pin(stream))
}
