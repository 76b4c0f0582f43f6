//! How the fake "runs" a task: each line of `setup` and `run` is a step that takes the fake's
//! step time; `echo` prints (with `$VAR` / `${VAR}` expanded), `sleep N` waits N seconds and
//! `exit N` ends the node's script with code N. A job is Pending for the fake's start delay,
//! then Running until its slowest node's script ends.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use skyplan_spec::REDACTED;

use crate::{JobState, JobStatus, LogLine, TaskRun, node_variables};

/// How long fake jobs take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// From provision (or exec) until the job runs: it is Pending meanwhile.
    pub start: Duration,
    /// How long each script line takes (a `sleep N` line takes N seconds more).
    pub step: Duration,
}

impl Default for Timing {
    /// 20 ms Pending, 10 ms a line: every state happens, and tests stay fast.
    fn default() -> Self {
        Timing {
            start: Duration::from_millis(20),
            step: Duration::from_millis(10),
        }
    }
}

/// One node's script, as run.
#[derive(Debug, Clone)]
struct NodeRun {
    /// Lines printed, each with when (after the job started) it is printed.
    lines: Vec<(Duration, String)>,
    /// When the script ends, after the job started.
    end: Duration,
    exit_code: i32,
}

/// A job on a fake cluster.
#[derive(Debug, Clone)]
pub(super) struct FakeJob {
    pub(super) id: u64,
    name: String,
    created: Instant,
    start: Duration,
    nodes: Vec<NodeRun>,
    /// When `cancel` stopped it.
    cancelled: Option<Instant>,
}

impl FakeJob {
    /// Runs `task` on `ips.len()` nodes, with `setup` first when `with_setup`.
    pub(super) fn start(
        id: u64,
        task: &TaskRun,
        ips: &[String],
        gpus_per_node: f64,
        with_setup: bool,
        timing: Timing,
    ) -> Self {
        let scripts: Vec<&str> = [
            if with_setup { task.setup.as_deref() } else { None },
            task.run.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        let nodes = (0..ips.len() as u32)
            .map(|rank| {
                let mut env: BTreeMap<String, String> = task.envs.clone();
                env.extend(task.secrets.keys().map(|k| (k.clone(), REDACTED.to_string())));
                env.extend(node_variables(rank, ips, gpus_per_node));
                run_node(&scripts, &env, timing.step)
            })
            .collect();
        FakeJob {
            id,
            name: task.name.clone(),
            created: Instant::now(),
            start: timing.start,
            nodes,
            cancelled: None,
        }
    }

    /// How long the job has run, or `None` while it is Pending.
    fn running_for(&self, now: Instant) -> Option<Duration> {
        now.duration_since(self.created).checked_sub(self.start)
    }

    /// When the whole job ends.
    pub(super) fn ends_at(&self) -> Instant {
        let ends = self.created + self.start + self.nodes.iter().map(|n| n.end).max().unwrap_or_default();
        self.cancelled.map_or(ends, |at| at.min(ends))
    }

    /// Stops the job at `now` unless it has ended; whether it did.
    pub(super) fn cancel(&mut self, now: Instant) -> bool {
        if self.status(now).state.is_finished() {
            return false;
        }
        self.cancelled = Some(now);
        true
    }

    /// The job's state now.
    pub(super) fn status(&self, now: Instant) -> JobStatus {
        match self.cancelled.filter(|at| *at <= now) {
            // As it was when cancelled, where it had not ended.
            Some(at) => JobStatus {
                state: JobState::Cancelled,
                exit_code: None,
                ..self.progress(at)
            },
            None => self.progress(now),
        }
    }

    /// The job's state at `now`, were it never cancelled.
    fn progress(&self, now: Instant) -> JobStatus {
        let ran = self.running_for(now);
        let node_exit_codes: Vec<Option<i32>> = self
            .nodes
            .iter()
            .map(|n| ran.filter(|t| *t >= n.end).map(|_| n.exit_code))
            .collect();
        let finished = node_exit_codes.iter().all(Option::is_some);
        let exit_code = finished.then(|| {
            node_exit_codes
                .iter()
                .flatten()
                .copied()
                .find(|c| *c != 0)
                .unwrap_or(0)
        });
        JobStatus {
            id: self.id,
            name: self.name.clone(),
            state: match (ran, exit_code) {
                (None, _) => JobState::Pending,
                (Some(_), None) => JobState::Running,
                (Some(_), Some(0)) => JobState::Succeeded,
                (Some(_), Some(_)) => JobState::Failed,
            },
            exit_code,
            node_exit_codes,
            started_at: None,
            ended_at: None,
        }
    }

    /// Every line the job prints, with when, in time order (rank order among equals).
    pub(super) fn timeline(&self) -> Vec<(Instant, LogLine)> {
        let begin = self.created + self.start;
        let mut lines: Vec<(Instant, LogLine)> = self
            .nodes
            .iter()
            .enumerate()
            .flat_map(|(rank, node)| {
                node.lines.iter().map(move |(at, text)| {
                    (
                        begin + *at,
                        LogLine {
                            node: rank as u32,
                            text: text.clone(),
                        },
                    )
                })
            })
            .collect();
        lines.retain(|(at, _)| self.cancelled.is_none_or(|c| *at <= c));
        lines.sort_by_key(|(at, line)| (*at, line.node));
        lines
    }
}

fn run_node(scripts: &[&str], env: &BTreeMap<String, String>, step: Duration) -> NodeRun {
    let mut clock = Duration::ZERO;
    let mut lines = Vec::new();
    let mut exit_code = 0;
    'scripts: for text in scripts {
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            clock += step;
            if let Some(rest) = line.strip_prefix("echo ") {
                let text = expand(rest.trim().trim_matches(|c| c == '"' || c == '\''), env);
                lines.push((clock, text));
            } else if let Some(rest) = line.strip_prefix("sleep ") {
                clock += rest
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .unwrap_or_default();
            } else if let Some(rest) = line.strip_prefix("exit") {
                exit_code = match rest.trim() {
                    "" => 0,
                    code => code.parse().unwrap_or(1),
                };
                break 'scripts;
            }
        }
    }
    NodeRun {
        lines,
        end: clock,
        exit_code,
    }
}

/// Expands `$NAME` and `${NAME}` from `env` (unknown names expand to nothing).
pub(super) fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, consumed) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            (&after[..end], end)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        out.push_str(env.get(name).map_or("", String::as_str));
        rest = &after[consumed..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_handles_both_forms_and_unknowns() {
        let env = BTreeMap::from([
            ("A".to_string(), "1".to_string()),
            ("B_C".to_string(), "2".to_string()),
        ]);
        assert_eq!(expand("a=$A b=${B_C} c=$NOPE $ end", &env), "a=1 b=2 c= $ end");
    }

    #[test]
    fn jobs_go_pending_running_then_finish_with_their_exit_code() {
        let task = TaskRun {
            run: Some("echo one\nsleep 0.2\necho two\nexit 3\necho never".to_string()),
            ..TaskRun::default()
        };
        let timing = Timing {
            start: Duration::from_millis(100),
            step: Duration::from_millis(10),
        };
        let job = FakeJob::start(1, &task, &["10.0.0.1".to_string()], 0.0, true, timing);
        let at = |ms: u64| job.created + Duration::from_millis(ms);
        assert_eq!(job.status(at(50)).state, JobState::Pending);
        let running = job.status(at(150));
        assert_eq!((running.state, running.exit_code), (JobState::Running, None));
        let done = job.status(at(400));
        assert_eq!((done.state, done.exit_code), (JobState::Failed, Some(3)));
        assert_eq!(done.node_exit_codes, vec![Some(3)]);
        let texts: Vec<String> = job.timeline().into_iter().map(|(_, l)| l.text).collect();
        assert_eq!(texts, ["one", "two"]);
        // one (10 ms), sleep (10 ms + 200 ms), two, exit: 240 ms after the 100 ms start.
        assert_eq!(job.ends_at(), at(340));
    }
}
