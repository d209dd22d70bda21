//! A small bounded in-memory map for immutable values (pinned manifests,
//! content-addressed manifest bytes): warm pulls are answered without I/O.
//! When full it is simply cleared; values can always be read again.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct Memo<K, V> {
    map: Mutex<HashMap<K, V>>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Memo<K, V> {
    pub fn new(capacity: usize) -> Self {
        Memo {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub fn get(&self, key: &K) -> Option<V> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    pub fn put(&self, key: &K, value: &V) {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded() {
        let m = Memo::new(2);
        m.put(&1, &"a");
        m.put(&2, &"b");
        assert_eq!(m.get(&1), Some("a"));
        m.put(&3, &"c");
        assert_eq!(m.get(&3), Some("c"));
        assert!(m.map.lock().expect("lock").len() <= 2);
    }
}
