//! A table of values that repeat across many entries (customers,
//! currencies), so each entry holds a 4-byte index instead of its own copy.

use std::collections::HashMap;
use std::hash::Hash;

/// Each distinct value once, numbered in the order first seen.
#[derive(Debug)]
pub struct Interned<T> {
    values: Vec<T>,
    numbers: HashMap<T, u32>,
}

impl<T> Default for Interned<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            numbers: HashMap::new(),
        }
    }
}

impl<T: Clone + Eq + Hash> Interned<T> {
    /// The number of `value`, added if new.
    pub fn number(&mut self, value: &T) -> u32 {
        if let Some(n) = self.numbers.get(value) {
            return *n;
        }
        // More than four billion distinct values would not fit in memory anyway.
        let n = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(value.clone());
        self.numbers.insert(value.clone(), n);
        n
    }

    /// The number of `value`, if it was ever added.
    pub fn find(&self, value: &T) -> Option<u32> {
        self.numbers.get(value).copied()
    }

    /// The value numbered `n`.
    pub fn get(&self, n: u32) -> Option<&T> {
        self.values.get(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_keeps_its_number() {
        let mut table = Interned::default();
        let a = table.number(&"alice".to_owned());
        let b = table.number(&"bob".to_owned());
        assert_ne!(a, b);
        assert_eq!(table.number(&"alice".to_owned()), a);
        assert_eq!(table.find(&"bob".to_owned()), Some(b));
        assert_eq!(table.find(&"carol".to_owned()), None);
        assert_eq!(table.get(a).map(String::as_str), Some("alice"));
        assert_eq!(table.get(7), None);
    }
}
