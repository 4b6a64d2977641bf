//! One copy of a value that many hosts hold alike (the key files of their
//! targets, the paths their reports name): a fleet of 10,000 holds one or
//! a few, not 10,000; and one making of a value that many hosts are sent
//! alike (a script, quoted).

use std::sync::{Arc, Mutex};

/// The values handed out so far, each once. Only the first `most`
/// distinct ones are kept and looked up: a few values held alike are what
/// sharing is for, and hosts that each hold their own are not all kept and
/// scanned.
pub struct Shared<T: ?Sized> {
    known: Mutex<Vec<Arc<T>>>,
    most: usize,
}

impl<T: ?Sized + PartialEq> Shared<T> {
    pub const fn new(most: usize) -> Shared<T> {
        Shared {
            known: Mutex::new(Vec::new()),
            most,
        }
    }

    /// `value`, as the copy handed out before when there is one.
    pub fn share<V: AsRef<T> + Into<Arc<T>>>(&self, value: V) -> Arc<T> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(same) = known.iter().find(|known| ***known == *value.as_ref()) {
            return same.clone();
        }
        let value: Arc<T> = value.into();
        if known.len() < self.most {
            known.push(value.clone());
        }
        value
    }
}

/// A value made once per key and handed out to everyone who asks with an
/// equal key: the scripts every host of a run is sent alike (the lock
/// with its gather, the fresh login's `sshd -T`), built and quoted once,
/// not once per host. The last `most` keys are kept.
pub struct Made<K, V> {
    known: Mutex<std::collections::VecDeque<(K, Arc<V>)>>,
    most: usize,
}

impl<K: PartialEq, V> Made<K, V> {
    pub const fn new(most: usize) -> Made<K, V> {
        Made {
            known: Mutex::new(std::collections::VecDeque::new()),
            most,
        }
    }

    /// The value made for `key`, made now by `make` if no equal key has one.
    pub fn get(&self, key: K, make: impl FnOnce(&K) -> V) -> Arc<V> {
        let mut known = self.known.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, value)) = known.iter().find(|(k, _)| *k == key) {
            return value.clone();
        }
        let value = Arc::new(make(&key));
        if known.len() == self.most {
            known.pop_front();
        }
        known.push_back((key, value.clone()));
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_get_one_copy_up_to_the_bound() {
        let shared: Shared<str> = Shared::new(2);
        let a = shared.share("a");
        assert!(Arc::ptr_eq(&a, &shared.share(String::from("a"))));
        let b = shared.share("b");
        assert!(!Arc::ptr_eq(&a, &b));
        // Past the bound: the value is handed out, not kept.
        let c = shared.share("c");
        assert_eq!(&*c, "c");
        assert!(!Arc::ptr_eq(&c, &shared.share("c")));
        assert!(Arc::ptr_eq(&b, &shared.share("b")));
    }

    #[test]
    fn a_value_is_made_once_per_key_and_the_oldest_key_goes_past_the_bound() {
        let made: Made<u8, String> = Made::new(2);
        let calls = std::cell::Cell::new(0);
        let get = |key: u8| {
            made.get(key, |k| {
                calls.set(calls.get() + 1);
                format!("made {k}")
            })
        };
        let one = get(1);
        assert_eq!(*one, "made 1");
        assert!(Arc::ptr_eq(&one, &get(1)));
        get(2);
        get(3); // 1 goes
        assert!(!Arc::ptr_eq(&one, &get(1)));
        assert_eq!(calls.get(), 4);
    }
}
