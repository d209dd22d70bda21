//! Layer entries and the per-path items that find the stored layers lying within a closure.

use super::batch::Item;
use super::{decode, s, DynamoIndex};
use aws_sdk_dynamodb::types::AttributeValue;
use nixery_core::image::LayerDesc;
use nixery_core::storage::{LayerEntry, StorageError};
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn number(item: &Item, name: &str) -> Option<usize> {
    item.get(name)?.as_n().ok()?.parse().ok()
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name)?.as_s().ok().map(String::as_str)
}

impl DynamoIndex {
    /// The blobs of the layers under `keys` that exist.
    pub(super) async fn layer_blobs(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, LayerDesc>, StorageError> {
        let pks: Vec<String> = keys.iter().map(|k| format!("layer#{k}")).collect();
        let mut out = HashMap::new();
        for item in self.batch_get(&pks).await? {
            let Some(pk) = string(&item, "pk") else {
                continue;
            };
            let layer: LayerDesc = decode(pk, &item)?;
            out.insert(pk.trim_start_matches("layer#").to_string(), layer);
        }
        Ok(out)
    }

    /// The layer item (once, conditionally), then an item per path pointing at it.
    pub(super) async fn put_layer_items(
        &self,
        key: &str,
        entry: &LayerEntry,
    ) -> Result<bool, StorageError> {
        let n = AttributeValue::N(entry.contents.len().to_string());
        let data = serde_json::to_string(&entry.layer)
            .map_err(|e| StorageError::backend("DynamoDB", e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("layer#{key}")))
            .item("data", s(data))
            .item("n", n.clone())
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => {}
            Err(e) if super::condition_failed(&e) => return Ok(false),
            Err(e) => return Err(super::dynamo_error("PutItem", e)),
        }
        let items = entry.contents.iter().map(|path| {
            HashMap::from([
                ("pk".to_string(), s(format!("path#{path}"))),
                ("layer".to_string(), s(key)),
                ("n".to_string(), n.clone()),
            ])
        });
        self.batch_put(items.collect()).await?;
        Ok(true)
    }

    /// Layers whose every path is in `closure`: the path items of the closure, grouped by the
    /// layer they point at, where the count found equals the layer's size.
    pub(super) async fn stored_layers_within(
        &self,
        closure: &BTreeSet<String>,
    ) -> Result<Vec<LayerEntry>, StorageError> {
        let pks: Vec<String> = closure.iter().map(|p| format!("path#{p}")).collect();
        let mut by_layer: BTreeMap<String, (usize, Vec<String>)> = BTreeMap::new();
        for item in self.batch_get(&pks).await? {
            let (Some(pk), Some(layer), Some(n)) = (
                string(&item, "pk"),
                string(&item, "layer"),
                number(&item, "n"),
            ) else {
                continue;
            };
            let path = pk.trim_start_matches("path#").to_string();
            let slot = by_layer.entry(layer.to_string()).or_insert((n, Vec::new()));
            slot.1.push(path);
        }
        by_layer.retain(|_, (n, paths)| paths.len() == *n);
        let keys: Vec<String> = by_layer.keys().cloned().collect();
        let blobs = self.layer_blobs(&keys).await?;
        let entries = by_layer.into_iter().filter_map(|(key, (_, mut contents))| {
            contents.sort();
            let layer = blobs.get(&key)?.clone();
            Some(LayerEntry { layer, contents })
        });
        Ok(entries.collect())
    }
}
