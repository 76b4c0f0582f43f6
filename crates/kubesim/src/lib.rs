//! kubesim: a local Kubernetes API simulator for tests and demos (work in progress).
