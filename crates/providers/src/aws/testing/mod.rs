//! A local EC2 for tests (feature `aws-testing`): a real `moto_server` on a free loopback port,
//! and in front of it a small proxy that
//!
//! - answers chosen calls with EC2's own XML errors ([`Ec2Fault`]: capacity, quota, throttling
//!   for a region, zone or instance type, a number of times), since moto injects none;
//! - emulates what moto cannot: the instances' boot. For each instance `RunInstances` creates,
//!   it runs the user data with `bash` as a local process (a while later, as an instance boots),
//!   serves it an instance metadata endpoint (IMDSv2 token, `ami-launch-index`, `local-ipv4`,
//!   tags), and answers `GetConsoleOutput` with what the process printed, late and cut to its
//!   last 64 KiB as EC2 does. `TerminateInstances` kills it;
//! - optionally answers calls naming a new instance with `InvalidInstanceID.NotFound` for a
//!   while, as eventually consistent EC2 does.
//!
//! Everything else goes to moto unchanged, so the SDK, its signing, XML parsing, pagination and
//! retries are the real ones. The proxy records every call ([`AwsTestbed::calls`]).
//! `moto_server` must be on `PATH` (`pip install 'moto[server]'`).

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Request, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::io::AsyncReadExt;

use super::AwsSettings;

mod instances;

use instances::{Emulated, boot, console_output, group_alive, imds, kill, record_tags};

/// An error answer the proxy gives instead of forwarding a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Fault {
    /// The EC2 action (`RunInstances`).
    pub action: String,
    /// The error code (`InsufficientInstanceCapacity`).
    pub code: String,
    /// The HTTP status (EC2 sends capacity errors as 500, throttling as 503).
    pub status: u16,
    /// Only calls to this region.
    pub region: Option<String>,
    /// Only `RunInstances` into this zone (name, e.g. `us-east-1b`).
    pub zone: Option<String>,
    /// Only `RunInstances` of this instance type.
    pub instance_type: Option<String>,
    /// How many calls it answers; `None`: all.
    pub times: Option<u32>,
}

impl Ec2Fault {
    /// A fault for every call of `action`, with the status EC2 uses for `code`.
    pub fn new(action: &str, code: &str) -> Self {
        let status = match code {
            "InsufficientInstanceCapacity" | "InsufficientHostCapacity" | "InternalError" => 500,
            "RequestLimitExceeded" | "Unavailable" => 503,
            "AuthFailure" => 401,
            _ => 400,
        };
        Ec2Fault {
            action: action.to_string(),
            code: code.to_string(),
            status,
            region: None,
            zone: None,
            instance_type: None,
            times: None,
        }
    }

    /// Only in `region`.
    pub fn region(mut self, region: &str) -> Self {
        self.region = Some(region.to_string());
        self
    }

    /// Only into zone `zone` (a zone name).
    pub fn zone(mut self, zone: &str) -> Self {
        self.zone = Some(zone.to_string());
        self
    }

    /// Only for `instance_type`.
    pub fn instance_type(mut self, instance_type: &str) -> Self {
        self.instance_type = Some(instance_type.to_string());
        self
    }

    /// Only the next `n` matching calls.
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, call: &Ec2Call) -> bool {
        let param = |name: &str| call.params.get(name).map(String::as_str);
        self.action == call.action
            && self.times != Some(0)
            && self.region.as_deref().is_none_or(|r| r == call.region)
            && self
                .zone
                .as_deref()
                .is_none_or(|z| param("Placement.AvailabilityZone") == Some(z))
            && self
                .instance_type
                .as_deref()
                .is_none_or(|t| param("InstanceType") == Some(t))
    }
}

/// One call the proxy saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ec2Call {
    /// The EC2 action.
    pub action: String,
    /// The region from the request's signature.
    pub region: String,
    /// The query parameters (`Placement.AvailabilityZone`, `InstanceType`, ...).
    pub params: HashMap<String, String>,
    /// The fault code the proxy answered with, if any.
    pub fault: Option<String>,
}

#[derive(Default)]
struct ProxyState {
    upstream: String,
    port: u16,
    faults: Mutex<Vec<Ec2Fault>>,
    calls: Mutex<Vec<Ec2Call>>,
    instances: Mutex<HashMap<String, Emulated>>,
    /// How long after `RunInstances` calls naming a new instance answer that it does not exist.
    consistency_delay: Mutex<Duration>,
    /// How long after it is printed output shows in `GetConsoleOutput`.
    console_delay: Mutex<Duration>,
    /// How long after `RunInstances` an instance's user data starts.
    boot_delay: Mutex<Duration>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A moto server and the proxy in front of it, on loopback; both stop on drop, and every
/// emulated instance's processes are killed.
pub struct AwsTestbed {
    moto: std::process::Child,
    state: Arc<ProxyState>,
    runtime: Option<tokio::runtime::Runtime>,
    endpoint: String,
}

impl std::fmt::Debug for AwsTestbed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsTestbed")
            .field("endpoint", &self.endpoint)
            .field("moto", &self.state.upstream)
            .finish_non_exhaustive()
    }
}

/// How late console output shows at first: long enough that backends must poll for it.
pub const DEFAULT_CONSOLE_DELAY: Duration = Duration::from_millis(300);

/// How long after `RunInstances` user data starts at first: jobs are Pending meanwhile.
pub const DEFAULT_BOOT_DELAY: Duration = Duration::from_millis(200);

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl AwsTestbed {
    /// Starts `moto_server` (with instance type validation on) and the proxy; waits until moto
    /// answers. Errors say what is missing.
    pub fn start() -> Result<Self, String> {
        let moto_port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let moto = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &moto_port.to_string()])
            .env("MOTO_EC2_ENABLE_INSTANCE_TYPE_VALIDATION", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start moto_server (pip install 'moto[server]'): {e}"))?;
        let upstream = format!("http://127.0.0.1:{moto_port}");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("proxy bind: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let state = Arc::new(ProxyState {
            upstream: upstream.clone(),
            port,
            console_delay: Mutex::new(DEFAULT_CONSOLE_DELAY),
            boot_delay: Mutex::new(DEFAULT_BOOT_DELAY),
            ..Default::default()
        });
        let app = axum::Router::new().fallback(handle).with_state(state.clone());
        runtime.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let mut testbed = AwsTestbed {
            moto,
            state,
            runtime: Some(runtime),
            endpoint: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if std::net::TcpStream::connect(("127.0.0.1", moto_port)).is_ok() {
                break;
            }
            if let Ok(Some(status)) = testbed.moto.try_wait() {
                return Err(format!("moto_server exited at start: {status}"));
            }
            if Instant::now() > deadline {
                return Err("moto_server did not listen within 60 s".to_string());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(testbed)
    }

    /// The proxy's URL: what `AWS_ENDPOINT_URL` should be.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Settings for a provider that talks to this testbed: static test credentials, regions
    /// `us-east-1` and `us-west-2`, fast polling, two attempts for read calls.
    pub fn settings(&self) -> AwsSettings {
        AwsSettings {
            endpoint_url: Some(self.endpoint.clone()),
            credentials: Some(("testing".to_string(), "testing".to_string())),
            default_region: Some("us-east-1".to_string()),
            regions: Some(vec!["us-east-1".to_string(), "us-west-2".to_string()]),
            poll_interval: Duration::from_millis(100),
            teardown_wait: Duration::from_secs(10),
            max_attempts: 2,
        }
    }

    /// The environment a `skyplan` process needs to use this testbed through the standard AWS
    /// chain (and never instance metadata).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_string()),
            ("SKYPLAN_AWS_REGIONS", "us-east-1,us-west-2".to_string()),
            ("SKYPLAN_AWS_POLL_INTERVAL", "0.1".to_string()),
        ]
    }

    /// From now on, for `delay` after `RunInstances` creates an instance, calls naming it by id
    /// (`CreateTags`, `DescribeInstances` with instance ids, `GetConsoleOutput`,
    /// `TerminateInstances`) answer `InvalidInstanceID.NotFound`, as EC2 does while a new id
    /// has not reached every part of it. Off (zero) by default.
    pub fn set_eventual_consistency(&self, delay: Duration) {
        *lock(&self.state.consistency_delay) = delay;
    }

    /// From now on, output shows in `GetConsoleOutput` `delay` after it was printed
    /// ([`DEFAULT_CONSOLE_DELAY`] at start; EC2 takes minutes).
    pub fn set_console_delay(&self, delay: Duration) {
        *lock(&self.state.console_delay) = delay;
    }

    /// From now on, user data starts `delay` after `RunInstances` answers
    /// ([`DEFAULT_BOOT_DELAY`] at start; EC2 takes tens of seconds).
    pub fn set_boot_delay(&self, delay: Duration) {
        *lock(&self.state.boot_delay) = delay;
    }

    /// Answers matching calls with `fault` from now on.
    pub fn inject(&self, fault: Ec2Fault) {
        lock(&self.state.faults).push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }

    /// The calls of `action` seen so far, in order.
    pub fn calls(&self, action: &str) -> Vec<Ec2Call> {
        lock(&self.state.calls)
            .iter()
            .filter(|c| c.action == action)
            .cloned()
            .collect()
    }

    /// Every call seen so far, in order.
    pub fn all_calls(&self) -> Vec<Ec2Call> {
        lock(&self.state.calls).clone()
    }

    /// How many emulated instances still have a running process.
    pub fn running_instances(&self) -> usize {
        lock(&self.state.instances)
            .values()
            .filter(|i| i.pgid.is_some_and(group_alive))
            .count()
    }
}

impl Drop for AwsTestbed {
    fn drop(&mut self) {
        for instance in lock(&self.state.instances).values_mut() {
            kill(instance);
        }
        let _ = self.moto.kill();
        let _ = self.moto.wait();
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// The region in a SigV4 `Authorization` header (`Credential=AKID/DATE/REGION/ec2/...`).
fn signed_region(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split("Credential=").nth(1))
        .and_then(|v| v.split('/').nth(2))
        .unwrap_or("us-east-1")
        .to_string()
}

fn xml_error(status: u16, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code><Message>{message}</Message>\
         </Error></Errors><RequestID>skyplan-ec2-proxy</RequestID></Response>"
    );
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST),
        [("content-type", "text/xml")],
        body,
    )
        .into_response()
}

async fn handle(State(state): State<Arc<ProxyState>>, request: Request<Body>) -> Response {
    let (parts, body) = request.into_parts();
    if let Some(rest) = parts.uri.path().strip_prefix("/_imds/") {
        return imds(&state, &parts.method, rest);
    }
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => return xml_error(400, "MalformedRequest", &err.to_string()),
    };
    let params: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let mut call = Ec2Call {
        action: params.get("Action").cloned().unwrap_or_default(),
        region: signed_region(&parts.headers),
        params,
        fault: None,
    };
    let fault = {
        let mut faults = lock(&state.faults);
        faults.iter_mut().find(|f| f.matches(&call)).map(|fault| {
            if let Some(times) = fault.times.as_mut() {
                *times -= 1;
            }
            fault.clone()
        })
    };
    if let Some(id) = not_yet_known(&state, &call) {
        call.fault = Some("InvalidInstanceID.NotFound".to_string());
        lock(&state.calls).push(call);
        return xml_error(
            400,
            "InvalidInstanceID.NotFound",
            &format!("The instance ID '{id}' does not exist"),
        );
    }
    if let Some(fault) = fault {
        call.fault = Some(fault.code.clone());
        let message = format!("injected by the test proxy for {}", call.action);
        lock(&state.calls).push(call);
        return xml_error(fault.status, &fault.code, &message);
    }
    lock(&state.calls).push(call.clone());
    if call.action == "GetConsoleOutput"
        && let Some(response) = console_output(&state, &call)
    {
        return response;
    }
    let (status, headers, answer) =
        match forward(&state.upstream, &parts.method, &parts.uri, &parts.headers, body).await {
            Ok(answer) => answer,
            Err(err) => return xml_error(503, "Unavailable", &format!("moto unreachable: {err}")),
        };
    if status.is_success() {
        match call.action.as_str() {
            "RunInstances" => boot(&state, &call, &answer),
            "CreateTags" => record_tags(&state, &call.params),
            "TerminateInstances" => {
                let mut instances = lock(&state.instances);
                for id in indexed(&call.params, "InstanceId") {
                    if let Some(instance) = instances.get_mut(&id) {
                        kill(instance);
                    }
                }
            }
            _ => {}
        }
    }
    let mut response = Response::new(Body::from(answer));
    *response.status_mut() = status;
    for (name, value) in headers.iter() {
        if name != "content-length" && name != "transfer-encoding" {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }
    response
}

async fn forward(
    upstream: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, HeaderMap, Bytes), String> {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let target = format!("{upstream}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut builder = Request::builder().method(method.clone()).uri(target);
    for (name, value) in headers {
        if name != "host" {
            builder = builder.header(name, value);
        }
    }
    let request = builder.body(Full::new(body)).map_err(|e| e.to_string())?;
    let answer = client.request(request).await.map_err(|e| e.to_string())?;
    let (parts, body) = answer.into_parts();
    let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, bytes))
}

/// An instance id `call` names that was created less than the consistency delay ago.
fn not_yet_known(state: &ProxyState, call: &Ec2Call) -> Option<String> {
    let delay = *lock(&state.consistency_delay);
    if delay.is_zero() {
        return None;
    }
    let ids = match call.action.as_str() {
        "CreateTags" => indexed(&call.params, "ResourceId"),
        "DescribeInstances" | "TerminateInstances" => indexed(&call.params, "InstanceId"),
        "GetConsoleOutput" => call.params.get("InstanceId").cloned().into_iter().collect(),
        _ => return None,
    };
    let instances = lock(&state.instances);
    ids.into_iter()
        .find(|id| instances.get(id).is_some_and(|i| i.launched.elapsed() < delay))
}

/// Values of `Name.1`, `Name.2`, ... in order.
fn indexed(params: &HashMap<String, String>, name: &str) -> Vec<String> {
    (1..)
        .map_while(|n| params.get(&format!("{name}.{n}")).cloned())
        .collect()
}

/// The text of the first `<tag>...</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}
