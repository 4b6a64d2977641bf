//! One copy of a value that many hosts hold alike (the key files of their
//! targets, the paths their reports name): a fleet of 10,000 holds one or
//! a few, not 10,000.

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
}
