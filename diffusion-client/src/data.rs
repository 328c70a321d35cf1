//! A per-session typed store, like the Python client's `session.data`: one value of
//! each type, shared by every clone of the session handle.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Values keyed by their type. Cheap to clone; clones share the values.
#[derive(Clone, Default)]
pub struct SessionData {
    values: Arc<Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>>,
}

impl SessionData {
    fn lock(&self) -> MutexGuard<'_, HashMap<TypeId, Box<dyn Any + Send + Sync>>> {
        // A panic in another holder leaves plain values behind; they are still usable.
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores `value`, returning the previous value of its type.
    pub fn insert<T: Any + Send + Sync>(&self, value: T) -> Option<T> {
        let old = self.lock().insert(TypeId::of::<T>(), Box::new(value))?;
        old.downcast().ok().map(|b| *b)
    }

    /// A clone of the value of type `T`.
    pub fn get<T: Any + Send + Sync + Clone>(&self) -> Option<T> {
        self.lock()
            .get(&TypeId::of::<T>())
            .and_then(|v| v.downcast_ref::<T>())
            .cloned()
    }

    /// Runs `f` on the value of type `T`, inserting `T::default()` first if absent.
    pub fn with<T: Any + Send + Sync + Default, R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let mut values = self.lock();
        let slot = values
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Box::new(T::default()));
        match slot.downcast_mut::<T>() {
            Some(v) => f(v),
            // The map is keyed by TypeId, so the value under T's id is a T.
            None => f(&mut T::default()),
        }
    }

    /// Removes and returns the value of type `T`.
    pub fn remove<T: Any + Send + Sync>(&self) -> Option<T> {
        self.lock()
            .remove(&TypeId::of::<T>())?
            .downcast()
            .ok()
            .map(|b| *b)
    }
}

impl std::fmt::Debug for SessionData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionData({} values)", self.lock().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type_shared_by_clones() {
        let data = SessionData::default();
        assert_eq!(data.insert(5u32), None);
        let other = data.clone();
        assert_eq!(other.insert(7u32), Some(5));
        assert_eq!(data.get::<u32>(), Some(7));
        assert_eq!(
            data.with(|n: &mut u64| {
                *n += 1;
                *n
            }),
            1
        );
        assert_eq!(data.remove::<u32>(), Some(7));
        assert_eq!(data.get::<u32>(), None);
    }
}
