//! The `file_mounts` section: remote paths mapped to local paths, bucket URIs or storage objects.

use std::collections::BTreeMap;

use serde::Serialize;

use super::error::SpecError;
use super::yaml::{Ctx, Node, Value, child};

const STORAGE_KEYS: &[&str] = &[
    "name",
    "source",
    "store",
    "mode",
    "persistent",
    "config",
    "_force_delete",
];

/// One `file_mounts` entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileMount {
    /// A local path or a bucket URI (`s3://...`, `gs://...`) copied or mounted as is.
    Source(String),
    /// A storage object (`name`, `source`, `store`, `mode`, `persistent`), kept as written.
    Storage(BTreeMap<String, serde_json::Value>),
}

impl FileMount {
    /// Whether this is a path on the launching machine (not a bucket URI or storage object):
    /// backends that can copy files honour it; bucket mounts need a backend that mounts them.
    ///
    /// ```
    /// use skyplan_spec::FileMount;
    /// assert!(FileMount::Source("./data".into()).is_local());
    /// assert!(!FileMount::Source("s3://bucket/data".into()).is_local());
    /// ```
    pub fn is_local(&self) -> bool {
        match self {
            FileMount::Source(source) => !source.contains("://"),
            FileMount::Storage(_) => false,
        }
    }

    /// The local source path, for local mounts.
    pub fn local_source(&self) -> Option<&str> {
        match self {
            FileMount::Source(source) if self.is_local() => Some(source),
            _ => None,
        }
    }

    /// A short description for messages: the source, or `storage object`.
    pub fn describe(&self) -> String {
        match self {
            FileMount::Source(source) => source.clone(),
            FileMount::Storage(fields) => match fields.get("source").and_then(|v| v.as_str()) {
                Some(source) => format!("storage object from {source}"),
                None => "storage object".to_string(),
            },
        }
    }
}

/// Parses `file_mounts` (null = none).
pub(crate) fn parse_file_mounts(
    ctx: Ctx<'_>,
    node: &Node,
    path: &str,
) -> Result<BTreeMap<String, FileMount>, SpecError> {
    let mut mounts = BTreeMap::new();
    for entry in ctx.mapping(node, path, "a mapping of REMOTE_PATH: SOURCE")? {
        let entry_path = child(path, &entry.key);
        if entry.key.trim().is_empty() {
            return Err(ctx.invalid(entry.key_node, &entry_path, "a remote path"));
        }
        let mount = match &entry.value.value {
            Value::Str(source) if !source.trim().is_empty() => FileMount::Source(source.clone()),
            Value::Map(_) => {
                let mut storage = BTreeMap::new();
                for field in ctx.mapping(entry.value, &entry_path, "a storage mapping")? {
                    let field_path = child(&entry_path, &field.key);
                    match field.key.as_str() {
                        "mode" => {
                            let mode =
                                ctx.string(field.value, &field_path, "one of MOUNT, COPY, MOUNT_CACHED")?;
                            if !["MOUNT", "COPY", "MOUNT_CACHED"]
                                .contains(&mode.trim().to_ascii_uppercase().as_str())
                            {
                                return Err(ctx.invalid(
                                    field.value,
                                    &field_path,
                                    "one of MOUNT, COPY, MOUNT_CACHED",
                                ));
                            }
                        }
                        key if STORAGE_KEYS.contains(&key) => {}
                        _ => return Err(ctx.unknown_key(&field, &entry_path, STORAGE_KEYS, &[])),
                    }
                    storage.insert(field.key.clone(), ctx.json_of(field.value, &field_path)?);
                }
                FileMount::Storage(storage)
            }
            _ => {
                return Err(ctx.invalid(
                    entry.value,
                    &entry_path,
                    "a local path or bucket URI, or a storage mapping (name, source, store, mode)",
                ));
            }
        };
        mounts.insert(entry.key, mount);
    }
    Ok(mounts)
}
