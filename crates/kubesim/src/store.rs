//! One simulated cluster's object store: objects by kind, a cluster-wide resourceVersion, and a bounded
//! history of changes that watches replay.
//!
//! Every write bumps the cluster's resourceVersion, stamps it on the object and appends a
//! [`Change`] (with the previous object, so selector-filtered watches can turn a change that leaves
//! the selection into `DELETED`). A watch older than the kept history gets `410 Expired`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use serde_json::Value;

use crate::status::ApiError;

/// The resource kinds the simulator serves (all in the core `v1` group).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    Namespace,
    Node,
    Pod,
    Service,
    Secret,
    Event,
}

impl Kind {
    pub(crate) const ALL: [Kind; 6] = [
        Kind::Namespace,
        Kind::Node,
        Kind::Pod,
        Kind::Service,
        Kind::Secret,
        Kind::Event,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Resource name in URLs (`pods`).
    pub(crate) fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Node => "nodes",
            Kind::Pod => "pods",
            Kind::Service => "services",
            Kind::Secret => "secrets",
            Kind::Event => "events",
        }
    }

    pub(crate) fn singular(self) -> &'static str {
        self.plural().trim_end_matches('s')
    }

    /// `kind` field (`Pod`).
    pub(crate) fn kind(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Node => "Node",
            Kind::Pod => "Pod",
            Kind::Service => "Service",
            Kind::Secret => "Secret",
            Kind::Event => "Event",
        }
    }

    pub(crate) fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }

    pub(crate) fn short_names(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["ns"],
            Kind::Node => &["no"],
            Kind::Pod => &["po"],
            Kind::Service => &["svc"],
            Kind::Secret => &[],
            Kind::Event => &["ev"],
        }
    }

    pub(crate) fn from_plural(plural: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.plural() == plural)
    }

    /// Fields a `fieldSelector` may name, as the real API server indexes them.
    pub(crate) fn selectable_fields(self) -> &'static [&'static str] {
        match self {
            Kind::Namespace => &["metadata.name", "status.phase"],
            Kind::Node => &["metadata.name", "spec.unschedulable"],
            Kind::Pod => &[
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.nominatedNodeName",
            ],
            Kind::Secret => &["metadata.name", "metadata.namespace", "type"],
            Kind::Service => &["metadata.name", "metadata.namespace"],
            Kind::Event => &[
                "metadata.name",
                "metadata.namespace",
                "involvedObject.kind",
                "involvedObject.namespace",
                "involvedObject.name",
                "involvedObject.uid",
                "involvedObject.apiVersion",
                "involvedObject.resourceVersion",
                "involvedObject.fieldPath",
                "reason",
                "reportingComponent",
                "source",
                "type",
            ],
        }
    }
}

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChangeType {
    Added,
    Modified,
    Deleted,
}

impl ChangeType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ChangeType::Added => "ADDED",
            ChangeType::Modified => "MODIFIED",
            ChangeType::Deleted => "DELETED",
        }
    }
}

/// One entry of the change history.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub rv: u64,
    pub kind: Kind,
    pub change: ChangeType,
    pub object: Arc<Value>,
    /// The object before a `MODIFIED` change.
    pub previous: Option<Arc<Value>>,
}

/// Key of an object: namespace (empty for cluster-scoped kinds) and name.
pub(crate) type Key = (String, String);

/// How many changes a cluster keeps for watches to replay, unless configured otherwise.
pub(crate) const HISTORY_LIMIT: usize = 20_000;

/// The objects of one cluster.
#[derive(Debug)]
pub(crate) struct Store {
    rv: u64,
    history_limit: usize,
    objects: [BTreeMap<Key, Arc<Value>>; 6],
    history: VecDeque<Change>,
    /// Highest resourceVersion dropped from the history; watches from before it are expired.
    compacted: u64,
}

pub(crate) fn meta_str<'a>(object: &'a Value, field: &str) -> &'a str {
    object["metadata"][field].as_str().unwrap_or("")
}

pub(crate) fn key_of(kind: Kind, object: &Value) -> Key {
    let namespace = if kind.namespaced() {
        meta_str(object, "namespace")
    } else {
        ""
    };
    (namespace.to_owned(), meta_str(object, "name").to_owned())
}

impl Default for Store {
    fn default() -> Self {
        Self::with_history_limit(HISTORY_LIMIT)
    }
}

impl Store {
    /// An empty store keeping `history_limit` changes for watches.
    pub(crate) fn with_history_limit(history_limit: usize) -> Self {
        Self {
            rv: 0,
            history_limit: history_limit.max(1),
            objects: Default::default(),
            history: VecDeque::new(),
            compacted: 0,
        }
    }

    /// The current resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    pub(crate) fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<&Arc<Value>> {
        let namespace = if kind.namespaced() { namespace } else { "" };
        self.objects[kind.index()].get(&(namespace.to_owned(), name.to_owned()))
    }

    /// Objects of `kind`, in one namespace or all.
    pub(crate) fn list<'a>(
        &'a self,
        kind: Kind,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.objects[kind.index()]
            .iter()
            .filter(move |((ns, _), _)| namespace.is_none_or(|want| !kind.namespaced() || ns == want))
            .map(|(_, v)| v)
    }

    fn record(&mut self, kind: Kind, change: ChangeType, object: Arc<Value>, previous: Option<Arc<Value>>) {
        self.history.push_back(Change {
            rv: self.rv,
            kind,
            change,
            object,
            previous,
        });
        while self.history.len() > self.history_limit {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted = dropped.rv;
            }
        }
    }

    fn stamp(&mut self, object: &mut Value) {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = Value::String(self.rv.to_string());
    }

    /// Stores a new object; `409 AlreadyExists` if the name is taken.
    pub(crate) fn create(&mut self, kind: Kind, mut object: Value) -> Result<Arc<Value>, ApiError> {
        let key = key_of(kind, &object);
        if self.objects[kind.index()].contains_key(&key) {
            return Err(ApiError::already_exists(kind.plural(), &key.1));
        }
        self.stamp(&mut object);
        let object = Arc::new(object);
        self.objects[kind.index()].insert(key, object.clone());
        self.record(kind, ChangeType::Added, object.clone(), None);
        Ok(object)
    }

    /// Replaces an existing object; `404 NotFound` if it is gone.
    pub(crate) fn replace(&mut self, kind: Kind, mut object: Value) -> Result<Arc<Value>, ApiError> {
        let key = key_of(kind, &object);
        let Some(previous) = self.objects[kind.index()].get(&key).cloned() else {
            return Err(ApiError::not_found(kind.plural(), &key.1));
        };
        self.stamp(&mut object);
        let object = Arc::new(object);
        self.objects[kind.index()].insert(key, object.clone());
        self.record(kind, ChangeType::Modified, object.clone(), Some(previous));
        Ok(object)
    }

    /// Applies `edit` to a copy of an existing object and stores it if `edit` returns `true`.
    pub(crate) fn modify(
        &mut self,
        kind: Kind,
        namespace: &str,
        name: &str,
        edit: impl FnOnce(&mut Value) -> bool,
    ) -> Option<Arc<Value>> {
        let mut object = Value::clone(self.get(kind, namespace, name)?);
        if !edit(&mut object) {
            return None;
        }
        self.replace(kind, object).ok()
    }

    /// Removes an object; the `DELETED` change carries `last` (the object as the client should see it).
    pub(crate) fn delete(&mut self, kind: Kind, namespace: &str, name: &str) -> Option<Arc<Value>> {
        let namespace = if kind.namespaced() { namespace } else { "" };
        let removed = self.objects[kind.index()].remove(&(namespace.to_owned(), name.to_owned()))?;
        let mut object = Value::clone(&removed);
        self.stamp(&mut object);
        let object = Arc::new(object);
        self.record(kind, ChangeType::Deleted, object.clone(), None);
        Some(object)
    }

    /// Changes after `since`, or `Err(oldest kept)` if some of them were dropped.
    pub(crate) fn changes_since(&self, since: u64) -> Result<impl Iterator<Item = &Change>, u64> {
        if since < self.compacted {
            return Err(self.compacted + 1);
        }
        let start = self.history.partition_point(|c| c.rv <= since);
        Ok(self.history.range(start..))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "default"}})
    }

    #[test]
    fn writes_bump_resource_version_and_history() {
        let mut store = Store::default();
        store.create(Kind::Pod, pod("a")).unwrap();
        assert_eq!(store.create(Kind::Pod, pod("a")).unwrap_err().code, 409);
        store.modify(Kind::Pod, "default", "a", |p| {
            p["spec"] = json!({"nodeName": "n"});
            true
        });
        store.delete(Kind::Pod, "default", "a");
        assert_eq!(store.resource_version(), 3);
        let kinds: Vec<_> = store.changes_since(1).unwrap().map(|c| c.change).collect();
        assert_eq!(kinds, [ChangeType::Modified, ChangeType::Deleted]);
    }

    #[test]
    fn old_watches_expire() {
        let mut store = Store::default();
        for i in 0..HISTORY_LIMIT + 5 {
            store
                .create(
                    Kind::Event,
                    json!({"metadata": {"name": format!("e{i}"), "namespace": "default"}}),
                )
                .unwrap();
        }
        assert_eq!(store.changes_since(2).err(), Some(6));
        assert_eq!(store.changes_since(5).unwrap().count(), HISTORY_LIMIT);
    }
}
