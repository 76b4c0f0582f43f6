//! The user data an EC2 instance boots with, and the parser that reads its output back (pure).
//!
//! The script runs the task's `setup`, then its `run`, on every node and prints each line of
//! their output as `[skyplan job 1] TEXT` and the end as `[skyplan job 1 exit] CODE`. cloud-init
//! sends a user-data script's output to the serial console, and `GetConsoleOutput` returns the
//! console, so status and logs need no SSH key, no open port and no agent on the instance: the
//! same EC2 API that launched it reads it back, through the same credentials. The prefixes let
//! [`parse_console`] skip kernel and cloud-init lines. The limits of that choice: EC2 keeps only
//! the newest 64 KiB of console output (the whole log stays on the instance in
//! `/opt/skyplan/job-1.log`), and some instance types refresh it only every few minutes.
//!
//! The node's rank is its `ami-launch-index` (all nodes come from one `RunInstances`), read from
//! the instance metadata service (IMDSv2). The node IPs are not known before the launch, so the
//! provider tags every instance with them ([`super::NODE_IPS_TAG`]) right after, and the script
//! waits for that tag in the instance metadata (`InstanceMetadataTags` is enabled for this).
//! `SKYPLAN_IMDS_ENDPOINT` and `SKYPLAN_NODE_ROOT` override the metadata address and the working
//! directory; only the test emulator sets them.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::TaskRun;
use crate::task::{REDACT_AWK, shell_quote};

/// How long a node waits for the node-IPs tag before giving up.
const NODE_IPS_WAIT_SECONDS: u32 = 600;

/// The prefix of a job output line on the console (`#N`: the line number, filled in on the
/// node), so that lines cut from the front of the console (EC2 keeps its last 64 KiB) are
/// counted, not silently lost.
fn line_prefix(job: u64) -> String {
    format!("[skyplan job {job} #N] ")
}

/// The prefix of a message of the user data itself (before the job's output).
fn note_prefix(job: u64) -> String {
    format!("[skyplan job {job}] ")
}

/// The prefix of a job's exit line on the console.
fn exit_prefix(job: u64) -> String {
    format!("[skyplan job {job} exit] ")
}

/// What the user data of an instance needs to know beyond the task.
#[derive(Debug, Clone, PartialEq)]
pub struct UserDataContext<'a> {
    /// Cluster name (for the header comment).
    pub cluster: &'a str,
    /// Request id (for the header comment).
    pub request_id: &'a str,
    /// Nodes in the cluster.
    pub num_nodes: u32,
    /// Accelerators per node (for `SKYPLAN_NUM_GPUS_PER_NODE` and `docker run --gpus`).
    pub gpus_per_node: f64,
}

/// The user-data script for `task`: the same on every node of the cluster.
///
/// ```
/// use skyplan_providers::TaskRun;
/// use skyplan_providers::aws::userdata::{UserDataContext, render_user_data};
/// let task = TaskRun::command("hello", "echo hello");
/// let context = UserDataContext { cluster: "c", request_id: "r", num_nodes: 2, gpus_per_node: 0.0 };
/// let script = render_user_data(&task, &context);
/// assert!(script.starts_with("#!/bin/bash\n"));
/// assert!(script.contains("export SKYPLAN_NUM_NODES=2 SKYPILOT_NUM_NODES=2"));
/// ```
pub fn render_user_data(task: &TaskRun, context: &UserDataContext<'_>) -> String {
    let mut s = String::new();
    let job = 1;
    let prefix = line_prefix(job);
    let exit = exit_prefix(job);
    let one_line = |text: &str| text.replace(['\n', '\r'], " ");
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!(
        "# skyplan user data for cluster {} (request {}): runs the task's setup, then its run, and\n\
         # prints their output on the console as \"{prefix}...\", where `skyplan logs` reads it.\n",
        one_line(context.cluster),
        one_line(context.request_id),
    ));
    s.push_str("set -u\n");
    s.push_str("imds=\"${SKYPLAN_IMDS_ENDPOINT:-http://169.254.169.254}\"\n");
    s.push_str("root=\"${SKYPLAN_NODE_ROOT:-/opt/skyplan}\"\n");
    s.push_str(&format!(
        "say() {{ printf '%s%s\\n' {} \"$*\"; }}\n",
        shell_quote(&note_prefix(job))
    ));
    s.push_str(&format!(
        "finish() {{ printf '%s%s\\n' {} \"$1\"; exit \"$1\"; }}\n",
        shell_quote(&exit)
    ));
    s.push_str("mkdir -p \"$root/work\" || { say \"cannot create $root/work\"; finish 1; }\n");
    s.push_str(
        "token=$(curl -sf -m 5 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 21600' \"$imds/latest/api/token\") \\\n  \
         || { say \"cannot reach the instance metadata service at $imds\"; finish 1; }\n",
    );
    s.push_str(
        "metadata() { curl -sf -m 5 -H \"X-aws-ec2-metadata-token: $token\" \"$imds/latest/meta-data/$1\"; }\n",
    );
    s.push_str("rank=$(metadata ami-launch-index) || { say \"cannot read ami-launch-index\"; finish 1; }\n");
    s.push_str(&format!(
        "ips=\"\"\nfor _ in $(seq 1 {NODE_IPS_WAIT_SECONDS}); do\n  \
         ips=$(metadata tags/instance/{tag}) && [ -n \"$ips\" ] && break\n  ips=\"\"\n  sleep 1\ndone\n\
         [ -n \"$ips\" ] || {{ say \"tag {tag} never appeared (was the launch interrupted?)\"; finish 1; }}\n\
         ips=$(printf '%s' \"$ips\" | tr ',' '\\n')\n",
        tag = super::NODE_IPS_TAG,
    ));
    let gpus = skyplan_catalog::format_count(context.gpus_per_node);
    for (name, value) in [
        ("NODE_RANK", "\"$rank\"".to_string()),
        ("NODE_IPS", "\"$ips\"".to_string()),
        ("NUM_NODES", context.num_nodes.max(1).to_string()),
        ("NUM_GPUS_PER_NODE", gpus),
    ] {
        s.push_str(&format!(
            "export SKYPLAN_{name}={value} SKYPILOT_{name}={value}\n"
        ));
    }
    for (name, value) in &task.envs {
        s.push_str(&format!("export {name}={}\n", shell_quote(value)));
    }
    for (name, value) in &task.secrets {
        s.push_str(&format!("export {name}={}\n", shell_quote(value.expose())));
    }
    let mut file = |name: &str, contents: &str| {
        s.push_str(&format!(
            "echo {} | base64 -d > \"$root/{name}\"\n",
            STANDARD.encode(contents)
        ));
    };
    if let Some(setup) = &task.setup {
        file("setup.sh", setup);
    }
    if let Some(run) = &task.run {
        file("run.sh", run);
    }
    file("redact.awk", REDACT_AWK);
    let secret_names: Vec<&str> = task.secrets.keys().map(String::as_str).collect();
    match task.docker_image() {
        None => s.push_str(
            "job() {\n  cd \"$root/work\" || return 1\n  \
             if [ -f \"$root/setup.sh\" ]; then\n    bash \"$root/setup.sh\"; rc=$?\n    \
             if [ \"$rc\" -ne 0 ]; then echo \"skyplan: setup failed with exit code $rc\" >&2; return \"$rc\"; fi\n  fi\n  \
             if [ -f \"$root/run.sh\" ]; then bash \"$root/run.sh\"; return $?; fi\n  return 0\n}\n",
        ),
        Some(image) => {
            let image = shell_quote(image);
            s.push_str(
                "if ! command -v docker >/dev/null 2>&1; then\n  say \"installing docker\"\n  \
                 (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io) >/dev/null 2>&1 \\\n    \
                 || { say \"could not install docker\"; finish 1; }\nfi\n",
            );
            s.push_str(&format!(
                "docker pull -q {image} >/dev/null 2>&1 || {{ say \"could not pull \"{image}; finish 1; }}\n"
            ));
            let mut passed: Vec<String> = ["NODE_RANK", "NODE_IPS", "NUM_NODES", "NUM_GPUS_PER_NODE"]
                .iter()
                .flat_map(|n| [format!("SKYPLAN_{n}"), format!("SKYPILOT_{n}")])
                .collect();
            passed.extend(task.envs.keys().cloned());
            passed.extend(task.secrets.keys().cloned());
            let env_flags: String = passed.iter().map(|n| format!(" -e {n}")).collect();
            let gpus_flag = if context.gpus_per_node > 0.0 { " --gpus all" } else { "" };
            let inner = "cd /skyplan/work || exit 1; if [ -f /skyplan/setup.sh ]; then bash /skyplan/setup.sh; \
                         rc=$?; if [ \"$rc\" -ne 0 ]; then echo \"skyplan: setup failed with exit code $rc\" >&2; \
                         exit \"$rc\"; fi; fi; if [ -f /skyplan/run.sh ]; then bash /skyplan/run.sh; exit $?; fi";
            s.push_str(&format!(
                "job() {{\n  docker run --rm --network host --shm-size 1g{gpus_flag}{env_flags} -v \"$root:/skyplan\" {image} \
                 bash -c {}\n}}\n",
                shell_quote(inner)
            ));
        }
    }
    s.push_str(&format!(
        "job 2>&1 | SKYPLAN_REDACT_VARS={} SKYPLAN_LINE_PREFIX={} awk -f \"$root/redact.awk\" | tee -a \"$root/job-{job}.log\"\n\
         finish \"${{PIPESTATUS[0]}}\"\n",
        shell_quote(&secret_names.join(" ")),
        shell_quote(&prefix),
    ));
    s
}

/// What one node's console says about a job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsoleJob {
    /// The job's output lines still on the console, in order, without the prefix.
    pub lines: Vec<String>,
    /// Each line's number in the job's output (1-based), or 0 for the user data's own
    /// messages printed before the job.
    pub numbers: Vec<u64>,
    /// The exit code, once the job has ended.
    pub exit_code: Option<i32>,
}

impl ConsoleJob {
    /// The lines after job line number `after` (the user data's own messages after the
    /// first `notes_seen` of them, while no job line has been seen), and how many job lines
    /// between are no longer on the console.
    pub fn since(&self, after: u64, notes_seen: usize) -> (Vec<(u64, &str)>, u64) {
        let mut out = Vec::new();
        let mut notes = 0;
        let mut cut = 0;
        let mut expected = after + 1;
        for (number, line) in self.numbers.iter().zip(&self.lines) {
            match *number {
                0 => {
                    notes += 1;
                    if after == 0 && notes > notes_seen {
                        out.push((0, line.as_str()));
                    }
                }
                n if n >= expected => {
                    cut += n - expected;
                    expected = n + 1;
                    out.push((n, line.as_str()));
                }
                _ => {}
            }
        }
        (out, cut)
    }
}

/// The lines and exit code of job `job` in a node's console output (already base64-decoded).
/// Lines of anything else (kernel, cloud-init) are skipped; a prefix in the middle of a line
/// (another message printed over it) still counts from the prefix on.
///
/// ```
/// use skyplan_providers::aws::userdata::parse_console;
/// let console = "[  0.1] kernel\n[skyplan job 1] starting\n[skyplan job 1 #1] hello\ncloud-init: x\n[skyplan job 1 exit] 3\n";
/// let job = parse_console(console, 1);
/// assert_eq!(job.lines, ["starting", "hello"]);
/// assert_eq!(job.numbers, [0, 1]);
/// assert_eq!(job.exit_code, Some(3));
/// ```
pub fn parse_console(output: &str, job: u64) -> ConsoleJob {
    let numbered = format!("[skyplan job {job} #");
    let note = note_prefix(job);
    let exit = exit_prefix(job);
    let mut parsed = ConsoleJob::default();
    for line in output.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(at) = line.find(&exit) {
            parsed.exit_code = line[at + exit.len()..].trim().parse().ok().or(Some(1));
        } else if let Some(at) = line.find(&numbered) {
            let rest = &line[at + numbered.len()..];
            if let Some((number, text)) = rest.split_once("] ")
                && let Ok(number) = number.parse::<u64>()
            {
                parsed.lines.push(text.to_string());
                parsed.numbers.push(number);
            }
        } else if let Some(at) = line.find(&note) {
            parsed.lines.push(line[at + note.len()..].to_string());
            parsed.numbers.push(0);
        }
    }
    parsed
}

#[cfg(test)]
mod tests {
    use super::*;
    use skyplan_spec::SecretString;

    fn context(num_nodes: u32, gpus: f64) -> UserDataContext<'static> {
        UserDataContext {
            cluster: "train",
            request_id: "train-1",
            num_nodes,
            gpus_per_node: gpus,
        }
    }

    /// Runs the rendered script with bash against a tiny metadata stand-in (a shell function
    /// shadowing curl), as cloud-init would, and returns what it printed and its exit code.
    fn run_script(script: &str, rank: u32, ips: &str) -> (String, i32) {
        let dir = tempfile::tempdir().expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        let curl = format!(
            "#!/bin/bash\nfor a in \"$@\"; do last=\"$a\"; done\ncase \"$last\" in\n  \
             */api/token) echo token ;;\n  */ami-launch-index) echo {rank} ;;\n  \
             */tags/instance/{}) printf '%s' '{ips}' ;;\n  *) exit 22 ;;\nesac\n",
            super::super::NODE_IPS_TAG
        );
        let curl_path = bin.join("curl");
        std::fs::write(&curl_path, curl).expect("curl");
        let chmod = std::process::Command::new("chmod")
            .arg("+x")
            .arg(&curl_path)
            .status()
            .expect("chmod");
        assert!(chmod.success());
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .env("PATH", path)
            .env("SKYPLAN_IMDS_ENDPOINT", "http://metadata.invalid")
            .env("SKYPLAN_NODE_ROOT", dir.path().join("node"))
            .output()
            .expect("bash");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    #[test]
    fn script_runs_setup_then_run_with_rank_ips_envs_and_scrubbed_secrets() {
        let mut task = TaskRun::command(
            "t",
            "echo rank=$SKYPLAN_NODE_RANK of $SKYPILOT_NUM_NODES model=$MODEL; echo \"$SKYPLAN_NODE_IPS\" | tail -1; echo token=$HF_TOKEN; pwd",
        );
        task.setup = Some("echo 'setting up (it'\"'\"'s quoted)'".to_string());
        task.envs.insert("MODEL".into(), "it's gemma".into());
        task.secrets
            .insert("HF_TOKEN".into(), SecretString::new("hf_s3cret"));
        let script = render_user_data(&task, &context(2, 1.0));
        let (out, code) = run_script(&script, 1, "10.0.0.1,10.0.0.2");
        assert_eq!(code, 0, "{out}");
        let job = parse_console(&out, 1);
        assert_eq!(job.exit_code, Some(0), "{out}");
        assert_eq!(job.lines[0], "setting up (it's quoted)", "{out}");
        assert_eq!(job.lines[1], "rank=1 of 2 model=it's gemma", "{out}");
        assert_eq!(job.lines[2], "10.0.0.2");
        assert_eq!(job.lines[3], "token=<redacted>");
        assert!(job.lines[4].ends_with("/node/work"), "{out}");
        assert!(!out.contains("hf_s3cret"), "{out}");
    }

    #[test]
    fn failing_setup_skips_run_and_reports_its_code() {
        let mut task = TaskRun::command("t", "echo never");
        task.setup = Some("echo broken; exit 7".to_string());
        let (out, code) = run_script(&render_user_data(&task, &context(1, 0.0)), 0, "10.0.0.1");
        let job = parse_console(&out, 1);
        assert_eq!((code, job.exit_code), (7, Some(7)), "{out}");
        assert_eq!(job.lines, ["broken", "skyplan: setup failed with exit code 7"]);
    }

    #[test]
    fn missing_node_ips_tag_fails_the_job_with_a_reason() {
        let task = TaskRun::command("t", "echo never");
        let script = render_user_data(&task, &context(1, 0.0)).replace("seq 1 600", "seq 1 1");
        let (out, _) = run_script(&script, 0, "");
        let job = parse_console(&out, 1);
        assert_eq!(job.exit_code, Some(1));
        assert!(job.lines[0].contains("never appeared"), "{out}");
    }

    #[test]
    fn docker_images_run_setup_and_run_in_the_container() {
        let mut task = TaskRun::command("t", "nvidia-smi");
        task.image_id = Some("docker:vllm/vllm-openai:latest".into());
        task.envs.insert("MODEL".into(), "m".into());
        let script = render_user_data(&task, &context(1, 8.0));
        assert!(
            script.contains("docker pull -q 'vllm/vllm-openai:latest'"),
            "{script}"
        );
        assert!(
            script.contains("docker run --rm --network host --shm-size 1g --gpus all -e SKYPLAN_NODE_RANK"),
            "{script}"
        );
        assert!(script.contains(" -e MODEL -v \"$root:/skyplan\" 'vllm/vllm-openai:latest' bash -c"));
        let (ok, _) = std::process::Command::new("bash")
            .arg("-n")
            .arg("-c")
            .arg(&script)
            .output()
            .map(|o| (o.status.success(), ()))
            .expect("bash -n");
        assert!(ok, "the script must be valid bash");
    }

    #[test]
    fn lines_since_count_what_the_console_cut() {
        let console = "[skyplan job 1] note\n[skyplan job 1 #4] d\n[skyplan job 1 #5] e\n";
        let job = parse_console(console, 1);
        assert_eq!(job.since(0, 0), (vec![(0, "note"), (4, "d"), (5, "e")], 3));
        assert_eq!(job.since(4, 1), (vec![(5, "e")], 0));
        assert_eq!(job.since(5, 1), (vec![], 0));
        // A note already shown is not shown again.
        assert_eq!(job.since(0, 1), (vec![(4, "d"), (5, "e")], 3));
    }

    #[test]
    fn console_parsing_ignores_other_lines_and_missing_codes() {
        let console =
            "boot\n[skyplan job 1] a\r\n[skyplan job 2 #1] b\n[skyplan job 1 #1] c\n[skyplan job 1 #x] d\n";
        let job = parse_console(console, 1);
        assert_eq!(
            job,
            ConsoleJob {
                lines: vec!["a".into(), "c".into()],
                numbers: vec![0, 1],
                exit_code: None
            }
        );
        let garbled = parse_console("[skyplan job 1 exit] x\n", 1);
        assert_eq!(garbled.exit_code, Some(1));
    }
}
