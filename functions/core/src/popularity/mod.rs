//! Popularity data for layer grouping: how many closures of a package set hold each store
//! path ("closure counts"), computed from the package set's top-level store paths by
//! `nixery popularity`, and the files `--popularity` reads.
//!
//! Two file formats are read, told apart by their shape:
//! - ours, `{"format": "nixery-closure-counts", "version": 1, "roots": N, "counts":
//!   {"<name-version>": count}}`, what the grouping's join rule is designed for;
//! - Nixery's `popularity.json`, a flat `{"<name-version>": count}` of how many top-level
//!   paths of the channel *directly* reference a path. It under-counts deep dependencies
//!   (a library that only other libraries use scores low however many closures hold it);
//!   grouping estimates closure counts from it within each image's closure, which recovers
//!   much but not all of the difference.

mod count;
mod sources;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use count::{by_name, closure_counts};
pub use sources::{
    cache_graph, local_store_graph, path_info_graph, read_roots, CacheWalk, Progress, SourceError,
};

use crate::layers::Popularity;

/// The `format` field of a closure-counts file.
pub const FORMAT: &str = "nixery-closure-counts";
/// The only version written and read so far.
pub const VERSION: u64 = 1;

/// The file `nixery popularity` writes.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ClosureCountsFile {
    pub format: String,
    pub version: u64,
    /// How many top-level store paths (closures) were counted: the highest possible count.
    pub roots: u64,
    /// Keyed by `store_path_name` ("name-version"), as the grouping looks paths up.
    pub counts: BTreeMap<String, u64>,
}

impl ClosureCountsFile {
    pub fn new(roots: u64, counts: BTreeMap<String, u64>) -> Self {
        Self {
            format: FORMAT.to_string(),
            version: VERSION,
            roots,
            counts,
        }
    }
}

/// Which kind of data a popularity file held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PopularityKind {
    /// `nixery popularity` output: closure counts over `roots` closures.
    ClosureCounts { roots: u64 },
    /// Nixery's `popularity.json`: direct-referrer counts.
    DirectReferrers,
}

#[derive(thiserror::Error, Debug)]
pub enum PopularityError {
    #[error("invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unsupported popularity file: format {format:?} version {version}; expected {FORMAT:?} version {VERSION}")]
    Version { format: String, version: u64 },
    #[error("not a popularity file: expected {{\"format\": {FORMAT:?}, ...}} or Nixery's {{\"<name>\": count}}; {0}")]
    Shape(String),
}

/// Parses either format (see the module doc), telling which one it was.
pub fn parse(text: &str) -> Result<(Popularity, PopularityKind), PopularityError> {
    let value: Value = serde_json::from_str(text)?;
    let Value::Object(map) = value else {
        return Err(PopularityError::Shape(
            "the top level is not an object".into(),
        ));
    };
    if map.contains_key("format") {
        return parse_ours(Value::Object(map));
    }
    let mut counts = std::collections::HashMap::with_capacity(map.len());
    for (name, count) in map {
        let Some(count) = count.as_u64() else {
            return Err(PopularityError::Shape(format!(
                "the value of {name:?} is not a non-negative integer"
            )));
        };
        counts.insert(name, count);
    }
    let popularity = Popularity {
        counts,
        direct_referrers: true,
    };
    Ok((popularity, PopularityKind::DirectReferrers))
}

fn parse_ours(value: Value) -> Result<(Popularity, PopularityKind), PopularityError> {
    let format = value.get("format").and_then(Value::as_str).unwrap_or("");
    let version = value.get("version").and_then(Value::as_u64).unwrap_or(0);
    if format != FORMAT || version != VERSION {
        let format = format.to_string();
        return Err(PopularityError::Version { format, version });
    }
    let file: ClosureCountsFile = serde_json::from_value(value)?;
    let kind = PopularityKind::ClosureCounts { roots: file.roots };
    Ok((file.counts.into_iter().collect(), kind))
}
