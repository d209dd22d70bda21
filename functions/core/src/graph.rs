//! The runtime closure graph of an image: every store path it needs, its NAR size and the
//! store paths it references. Parsed from `nix path-info --json -r` or from the
//! `exportReferencesGraph` file a Nix derivation writes; consumed by layer grouping.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// One store path of a closure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathInfo {
    pub path: String,
    pub nar_size: u64,
    /// Store paths this one references, sorted and deduplicated, never including itself.
    pub references: Vec<String>,
}

/// A closed set of store paths: every reference points at a path of the set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClosureGraph {
    /// The top-level paths the image was requested for; each is in `paths`.
    pub roots: Vec<String>,
    pub paths: BTreeMap<String, PathInfo>,
}

#[derive(thiserror::Error, Debug)]
pub enum GraphError {
    #[error("invalid closure JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("closure JSON must be {expected}, got {got}")]
    Shape { expected: &'static str, got: String },
    #[error("malformed entry for {path}: {source}")]
    Entry {
        path: String,
        source: serde_json::Error,
    },
    #[error("entry for {path} has no {field}")]
    MissingField { path: String, field: &'static str },
    #[error("store path {0} is not valid (not in the store)")]
    InvalidPath(String),
    #[error("store path {0} appears twice in the closure")]
    DuplicatePath(String),
    #[error("{from} references {to}, which is not in the closure")]
    DanglingReference { from: String, to: String },
    #[error("root {0} is not in the closure")]
    MissingRoot(String),
}

/// The fields we use of one path-info entry. `narSize` is optional here only so that an
/// invalid path (which Nix reports without it) gets a precise error instead of a serde one.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEntry {
    path: Option<String>,
    nar_size: Option<u64>,
    #[serde(default)]
    references: Vec<String>,
    valid: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExportGraph {
    export_references_graph: ExportRoots,
    graph: Vec<Value>,
}

#[derive(Deserialize)]
struct ExportRoots {
    graph: Vec<String>,
}

impl ClosureGraph {
    /// Parses `nix path-info --json -r` output: the list form of Nix <= 2.18
    /// (`[{"path": .., "narSize": .., "references": [..]}]`) or the object form of later
    /// versions (`{"<path>": {"narSize": .., "references": [..]} | null}`).
    pub fn from_path_info_json(roots: Vec<String>, json: &str) -> Result<Self, GraphError> {
        let entries = match serde_json::from_str::<Value>(json)? {
            Value::Array(items) => parse_list(items)?,
            Value::Object(map) => {
                let mut entries = Vec::with_capacity(map.len());
                for (path, value) in map {
                    // Newer Nix reports a path it does not have as `null`.
                    if value.is_null() {
                        return Err(GraphError::InvalidPath(path));
                    }
                    entries.push(parse_entry(value, Some(path))?);
                }
                entries
            }
            other => {
                return Err(GraphError::Shape {
                    expected: "a list or an object",
                    got: json_kind(&other).to_string(),
                })
            }
        };
        Self::build(roots, entries)
    }

    /// Parses the file `nixery layers --graph FILE` reads, as written by a derivation with
    /// `exportReferencesGraph.graph = [top-level paths]` and structured attributes.
    pub fn from_export_graph_json(json: &str) -> Result<Self, GraphError> {
        let export: ExportGraph = serde_json::from_str(json)?;
        let entries = parse_list(export.graph)?;
        Self::build(export.export_references_graph.graph, entries)
    }

    /// The sum of the NAR sizes of all paths: roughly the unpacked size of the image.
    pub fn total_nar_size(&self) -> u64 {
        self.paths
            .values()
            .fold(0u64, |sum, info| sum.saturating_add(info.nar_size))
    }

    /// Checks closure invariants once here, so grouping can rely on them.
    fn build(roots: Vec<String>, entries: Vec<PathInfo>) -> Result<Self, GraphError> {
        let mut paths = BTreeMap::new();
        for info in entries {
            if paths.contains_key(&info.path) {
                return Err(GraphError::DuplicatePath(info.path));
            }
            paths.insert(info.path.clone(), info);
        }
        for info in paths.values() {
            if let Some(to) = info.references.iter().find(|r| !paths.contains_key(*r)) {
                return Err(GraphError::DanglingReference {
                    from: info.path.clone(),
                    to: to.clone(),
                });
            }
        }
        if let Some(root) = roots.iter().find(|r| !paths.contains_key(*r)) {
            return Err(GraphError::MissingRoot(root.clone()));
        }
        Ok(Self { roots, paths })
    }
}

fn parse_list(items: Vec<Value>) -> Result<Vec<PathInfo>, GraphError> {
    items.into_iter().map(|v| parse_entry(v, None)).collect()
}

/// Parses one entry; `key` is the path when the entry came from the object form.
fn parse_entry(value: Value, key: Option<String>) -> Result<PathInfo, GraphError> {
    let label = key
        .clone()
        .or_else(|| {
            value
                .get("path")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "<entry without path>".to_string());
    let raw: RawEntry = serde_json::from_value(value).map_err(|source| GraphError::Entry {
        path: label.clone(),
        source,
    })?;
    let path = key.or(raw.path).ok_or_else(|| GraphError::MissingField {
        path: label.clone(),
        field: "path",
    })?;
    if raw.valid == Some(false) {
        return Err(GraphError::InvalidPath(path));
    }
    let nar_size = raw.nar_size.ok_or_else(|| GraphError::MissingField {
        path: path.clone(),
        field: "narSize",
    })?;
    // Nix lists a path that refers to itself among its references; for the graph that
    // edge is noise (and a cycle), so drop it.
    let mut references: Vec<String> = raw.references.into_iter().filter(|r| *r != path).collect();
    references.sort();
    references.dedup();
    Ok(PathInfo {
        path,
        nar_size,
        references,
    })
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// "name-version" of a store path: its last component without the 32-character hash and
/// the dash after it. Works for any store directory; a name without a hash is returned whole.
pub fn store_path_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    match base.as_bytes().get(32) {
        Some(b'-') if base.is_char_boundary(33) => &base[33..],
        _ => base,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GLIBC: &str = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-glibc-2.38";
    const BASH: &str = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-bash-5.2";

    fn list_form() -> String {
        format!(
            r#"[{{"path":"{BASH}","narSize":200,"references":["{GLIBC}","{BASH}"],"valid":true}},
                {{"path":"{GLIBC}","narSize":100,"references":["{GLIBC}"],"deriver":null}}]"#
        )
    }

    fn object_form() -> String {
        format!(
            r#"{{"{GLIBC}":{{"narSize":100,"references":["{GLIBC}"],"narHash":"sha256-x"}},
                "{BASH}":{{"narSize":200,"references":["{BASH}","{GLIBC}"]}}}}"#
        )
    }

    fn roots() -> Vec<String> {
        vec![BASH.to_string()]
    }

    #[test]
    fn both_path_info_forms_give_the_same_graph() {
        let list = ClosureGraph::from_path_info_json(roots(), &list_form()).expect("list");
        let object = ClosureGraph::from_path_info_json(roots(), &object_form()).expect("object");
        assert_eq!(list, object);
        assert_eq!(list.total_nar_size(), 300);
    }

    #[test]
    fn self_references_are_dropped() {
        let g = ClosureGraph::from_path_info_json(roots(), &object_form()).expect("parse");
        assert_eq!(g.paths[BASH].references, vec![GLIBC.to_string()]);
        assert!(g.paths[GLIBC].references.is_empty());
    }

    #[test]
    fn export_graph_parses() {
        let json = format!(
            r#"{{"exportReferencesGraph":{{"graph":["{BASH}"]}},
                "graph":[{{"path":"{BASH}","narSize":200,"closureSize":300,"references":["{GLIBC}","{BASH}"]}},
                         {{"path":"{GLIBC}","narSize":100,"closureSize":100,"references":[]}}]}}"#
        );
        let g = ClosureGraph::from_export_graph_json(&json).expect("parse");
        let expected = ClosureGraph::from_path_info_json(roots(), &list_form()).expect("list");
        assert_eq!(g, expected);
    }

    #[test]
    fn bad_input_is_rejected() {
        let err = |json: &str| ClosureGraph::from_path_info_json(roots(), json).map(|_| ());
        assert!(matches!(err("[{"), Err(GraphError::Json(_))));
        assert!(matches!(err("42"), Err(GraphError::Shape { .. })));
        let null = format!(r#"{{"{BASH}": null}}"#);
        assert!(matches!(err(&null), Err(GraphError::InvalidPath(p)) if p == BASH));
        let invalid = format!(r#"[{{"path":"{BASH}","valid":false}}]"#);
        assert!(matches!(err(&invalid), Err(GraphError::InvalidPath(_))));
        let no_size = format!(r#"{{"{BASH}": {{"references":[]}}}}"#);
        assert!(matches!(
            err(&no_size),
            Err(GraphError::MissingField { .. })
        ));
        let bad_size = format!(r#"{{"{BASH}": {{"narSize":"big"}}}}"#);
        assert!(matches!(err(&bad_size), Err(GraphError::Entry { .. })));
        let dangling = format!(r#"{{"{BASH}": {{"narSize":1,"references":["{GLIBC}"]}}}}"#);
        assert!(matches!(
            err(&dangling),
            Err(GraphError::DanglingReference { .. })
        ));
        let no_root = format!(r#"{{"{GLIBC}": {{"narSize":1,"references":[]}}}}"#);
        assert!(matches!(err(&no_root), Err(GraphError::MissingRoot(_))));
        let twice = format!(r#"[{{"path":"{BASH}","narSize":1}},{{"path":"{BASH}","narSize":1}}]"#);
        assert!(matches!(err(&twice), Err(GraphError::DuplicatePath(_))));
    }

    #[test]
    fn store_path_names() {
        assert_eq!(store_path_name(GLIBC), "glibc-2.38");
        assert_eq!(
            store_path_name("/other/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-x"),
            "x"
        );
        assert_eq!(store_path_name("/nix/store/short-name"), "short-name");
        assert_eq!(store_path_name("plain"), "plain");
    }
}
