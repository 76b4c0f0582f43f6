//! The proxy's emulated instances: user data run as a local process with an instance metadata
//! endpoint, console output as EC2 gives it (late, and only the last 64 KiB), tags.

use super::*;

/// An instance whose boot the proxy emulates.
pub(super) struct Emulated {
    /// When `RunInstances` answered: for the eventual-consistency window.
    pub(super) launched: Instant,
    launch_index: u32,
    private_ip: String,
    tags: HashMap<String, String>,
    console: Arc<Mutex<Console>>,
    pub(super) pgid: Option<i32>,
    /// Terminated (before or after its user data started).
    stopped: bool,
    dir: tempfile::TempDir,
}

pub(super) fn group_alive(pgid: i32) -> bool {
    rustix::process::Pid::from_raw(pgid)
        .is_some_and(|pid| rustix::process::test_kill_process_group(pid).is_ok())
}

pub(super) fn kill(instance: &mut Emulated) {
    instance.stopped = true;
    if let Some(pid) = instance.pgid.take().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

pub(super) fn record_tags(state: &ProxyState, params: &HashMap<String, String>) {
    let mut tags = HashMap::new();
    for n in 1.. {
        let Some(key) = params.get(&format!("Tag.{n}.Key")) else {
            break;
        };
        tags.insert(
            key.clone(),
            params.get(&format!("Tag.{n}.Value")).cloned().unwrap_or_default(),
        );
    }
    let mut instances = lock(&state.instances);
    for id in indexed(params, "ResourceId") {
        if let Some(instance) = instances.get_mut(&id) {
            instance.tags.extend(tags.clone());
        }
    }
}

/// Starts the user data of every instance in a `RunInstances` answer.
pub(super) fn boot(state: &Arc<ProxyState>, call: &Ec2Call, answer: &[u8]) {
    let answer = String::from_utf8_lossy(answer);
    let user_data = call
        .params
        .get("UserData")
        .and_then(|b| STANDARD.decode(b).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    let mut tags = HashMap::new();
    for spec in 1.. {
        let Some(kind) = call.params.get(&format!("TagSpecification.{spec}.ResourceType")) else {
            break;
        };
        if kind != "instance" {
            continue;
        }
        for n in 1.. {
            let Some(key) = call.params.get(&format!("TagSpecification.{spec}.Tag.{n}.Key")) else {
                break;
            };
            let value = call
                .params
                .get(&format!("TagSpecification.{spec}.Tag.{n}.Value"))
                .cloned()
                .unwrap_or_default();
            tags.insert(key.clone(), value);
        }
    }
    // Each instance's fields lie between its <instanceId> and the next one.
    let pieces: Vec<&str> = answer.split("<instanceId>").skip(1).collect();
    for piece in pieces {
        let Some(id) = piece.split("</instanceId>").next().map(str::to_string) else {
            continue;
        };
        let launch_index = element(piece, "amiLaunchIndex")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let private_ip = element(piece, "privateIpAddress").unwrap_or_default().to_string();
        let Ok(dir) = tempfile::Builder::new().prefix("skyplan-ec2-instance-").tempdir() else {
            continue;
        };
        let console = Arc::new(Mutex::new(Console::default()));
        lock(&state.instances).insert(
            id.clone(),
            Emulated {
                launched: Instant::now(),
                launch_index,
                private_ip,
                tags: tags.clone(),
                console,
                pgid: None,
                stopped: false,
                dir,
            },
        );
        // The instance boots a while after RunInstances answers, as on EC2; its user data runs
        // then, unless it was terminated meanwhile.
        if let Some(script) = user_data.clone() {
            let state = Arc::clone(state);
            let delay = *lock(&state.boot_delay);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let mut instances = lock(&state.instances);
                if let Some(instance) = instances.get_mut(&id)
                    && !instance.stopped
                {
                    let dir = instance.dir.path().to_path_buf();
                    instance.pgid = start_instance(&state, &id, &dir, &script, &instance.console);
                }
            });
        }
    }
}

fn start_instance(
    state: &ProxyState,
    id: &str,
    dir: &Path,
    script: &str,
    console: &Arc<Mutex<Console>>,
) -> Option<i32> {
    let path = dir.join("user-data");
    std::fs::write(&path, script).ok()?;
    let mut child = tokio::process::Command::new("bash")
        .arg(&path)
        .env(
            "SKYPLAN_IMDS_ENDPOINT",
            format!("http://127.0.0.1:{}/_imds/{id}", state.port),
        )
        .env("SKYPLAN_NODE_ROOT", dir.join("node"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .ok()?;
    let pgid = child.id().map(|p| p as i32);
    for mut pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
    ]
    .into_iter()
    .flatten()
    {
        let console = console.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer).await {
                if n == 0 {
                    break;
                }
                lock(&console).push(&buffer[..n]);
            }
        });
    }
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    pgid
}

pub(super) fn console_output(state: &ProxyState, call: &Ec2Call) -> Option<Response> {
    let id = call.params.get("InstanceId")?;
    let instances = lock(&state.instances);
    let instance = instances.get(id)?;
    let delay = *lock(&state.console_delay);
    let output = STANDARD.encode(lock(&instance.console).visible(Instant::now(), delay));
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<GetConsoleOutputResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15/\">\
         <requestId>skyplan-ec2-proxy</requestId><instanceId>{id}</instanceId><output>{output}</output></GetConsoleOutputResponse>"
    );
    Some(([("content-type", "text/xml")], body).into_response())
}

/// What an instance has printed, kept as EC2 serves it: output shows up only `delay` after it
/// was printed, and only the last [`CONSOLE_LIMIT`] bytes are served.
#[derive(Debug, Default)]
pub(super) struct Console {
    chunks: std::collections::VecDeque<(Instant, Vec<u8>)>,
}

/// EC2 keeps the last 64 KiB of an instance's console output.
pub(super) const CONSOLE_LIMIT: usize = 64 * 1024;

impl Console {
    fn push(&mut self, bytes: &[u8]) {
        self.chunks.push_back((Instant::now(), bytes.to_vec()));
        // Old output beyond what could ever be served again is dropped.
        let mut total: usize = self.chunks.iter().map(|(_, b)| b.len()).sum();
        while let Some((_, front)) = self.chunks.front() {
            if total - front.len() < CONSOLE_LIMIT * 2 {
                break;
            }
            total -= front.len();
            self.chunks.pop_front();
        }
    }

    /// The output printed at least `delay` before `now`, its last [`CONSOLE_LIMIT`] bytes.
    pub(super) fn visible(&self, now: Instant, delay: Duration) -> Vec<u8> {
        let mut out: Vec<u8> = self
            .chunks
            .iter()
            .filter(|(at, _)| *at + delay <= now)
            .flat_map(|(_, bytes)| bytes.iter().copied())
            .collect();
        out.drain(..out.len().saturating_sub(CONSOLE_LIMIT));
        out
    }
}

/// The instance metadata service of an emulated instance: `ID/latest/...`.
pub(super) fn imds(state: &ProxyState, method: &Method, rest: &str) -> Response {
    let (id, path) = rest.split_once('/').unwrap_or((rest, ""));
    let instances = lock(&state.instances);
    let Some(instance) = instances.get(id) else {
        return (StatusCode::NOT_FOUND, "no such instance").into_response();
    };
    let text = match (method, path) {
        (&Method::PUT, "latest/api/token") => Some("skyplan-emulated-token".to_string()),
        (_, "latest/meta-data/ami-launch-index") => Some(instance.launch_index.to_string()),
        (_, "latest/meta-data/local-ipv4") => Some(instance.private_ip.clone()),
        (_, "latest/meta-data/instance-id") => Some(id.to_string()),
        (_, other) => other
            .strip_prefix("latest/meta-data/tags/instance/")
            .and_then(|key| instance.tags.get(key).cloned()),
    };
    match text {
        Some(text) => text.into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_shows_output_late_and_only_its_last_64_kib() {
        let mut console = Console::default();
        console.push(b"first\n");
        let now = Instant::now();
        assert!(
            console.visible(now, Duration::from_secs(60)).is_empty(),
            "not yet"
        );
        assert_eq!(console.visible(now, Duration::ZERO), b"first\n");
        console.push(&vec![b'x'; CONSOLE_LIMIT]);
        let shown = console.visible(Instant::now(), Duration::ZERO);
        assert_eq!(shown.len(), CONSOLE_LIMIT);
        assert!(shown.iter().all(|b| *b == b'x'), "the first line is cut");
    }
}
