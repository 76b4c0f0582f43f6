//! Integration tests for kubesim, driven over HTTP by the real `kube` client, raw requests and stock
//! `kubectl`. One binary; one module per concern:

/// Shared helpers: start a simulator, build clients, poll with generous timeouts.
mod util;

/// Pods through the `kube` client: create/list/watch/log/delete, GPU fit and no-fit, kubelet behaviour.
mod pods;

/// Bad requests get proper `Status` answers (400, 404, 409, 410, 415, 422), never a crash.
mod errors;

/// Discovery, the simulator markers, several clusters and the kubeconfig.
mod discovery;

/// Stock `kubectl` against the simulator (skipped with a message when kubectl is not installed).
mod kubectl;

/// When the simulator ends (shut down, dropped at the end of a test), no pod process outlives it.
mod exit;

/// Paginated lists (`limit`, `continue`) through `kube` and kubectl.
mod paging;

/// `pods/exec` over WebSocket through `kube` and kubectl (`exec`, `exec -i`, `cp`).
mod exec;

/// `pods/portforward` over WebSocket through `kube`.
mod portforward;
