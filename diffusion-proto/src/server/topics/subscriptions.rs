//! What one session subscribes: its selectors, per scope (protocol 29), and the topics it
//! has been notified of, with what it was sent.

use std::collections::{BTreeMap, BTreeSet};

use super::error::TopicTreeError;
use crate::topics::Selector;

/// A session's subscription state: one field of the server's session.
#[derive(Debug, Default)]
pub(crate) struct SessionTopics {
    /// (scope, selector in its normalized form) → the selector. `a/b` and `>a/b` are one.
    selectors: BTreeMap<(String, String), Selector>,
    /// The ids of the topics the session was notified of and not since unsubscribed from.
    pub(crate) subscribed: BTreeSet<i32>,
    /// TOPIC_VALUE frames sent (or buffered) to the session.
    pub(crate) values_sent: u64,
    /// TOPIC_DELTA frames sent (or buffered) to the session.
    pub(crate) deltas_sent: u64,
}

impl SessionTopics {
    /// Whether any selector of any scope selects `path`.
    pub(crate) fn selects(&self, path: &str) -> bool {
        self.selectors.values().any(|s| s.matches(path))
    }

    /// Adds `selector` to `scope`; false when the scope held it already.
    pub(crate) fn add(
        &mut self,
        scope: &str,
        selector: &Selector,
        limit: usize,
    ) -> Result<bool, TopicTreeError> {
        let key = (scope.to_owned(), selector.normalized().into_owned());
        if self.selectors.contains_key(&key) {
            return Ok(false);
        }
        if self.selectors.len() >= limit {
            return Err(TopicTreeError::TooManySelectors { limit });
        }
        self.selectors.insert(key, selector.clone());
        Ok(true)
    }

    /// Removes `selector` from `scope`; false when the scope did not hold it.
    pub(crate) fn remove(&mut self, scope: &str, selector: &Selector) -> bool {
        let key = (scope.to_owned(), selector.normalized().into_owned());
        self.selectors.remove(&key).is_some()
    }

    /// (scope, selector) pairs, in that order.
    pub(crate) fn selectors(&self) -> impl Iterator<Item = (&str, &str)> {
        self.selectors
            .keys()
            .map(|(scope, s)| (scope.as_str(), s.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(s: &str) -> Selector {
        Selector::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn scopes_are_independent_and_forms_are_one() {
        let mut topics = SessionTopics::default();
        assert_eq!(topics.add("", &selector("a/b"), 3), Ok(true));
        assert_eq!(topics.add("", &selector(">a/b"), 3), Ok(false));
        assert_eq!(topics.add("s", &selector("?a//"), 3), Ok(true));
        assert!(topics.selects("a/b") && topics.selects("a/c") && !topics.selects("b"));
        assert_eq!(
            topics.add("", &selector("b"), 2),
            Err(TopicTreeError::TooManySelectors { limit: 2 })
        );
        assert!(!topics.remove("", &selector("?a//")));
        assert!(topics.remove("s", &selector("?a//")));
        assert!(topics.selects("a/b") && !topics.selects("a/c"));
        assert!(topics.remove("", &selector(">a/b")));
        assert_eq!(topics.selectors().count(), 0);
    }
}
