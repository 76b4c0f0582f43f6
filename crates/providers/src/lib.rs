//! Providers, the failover launcher and the state store (work in progress: see the launcher issue).
