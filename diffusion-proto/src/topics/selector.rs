//! Topic selectors (TOPICS.md §8): parsing the `>` path, `?` split-path pattern, `*`
//! full-path pattern and `#` set forms, and matching topic paths against them.
//!
//! Patterns are compiled once, at parse; a path selector and literal segments compare
//! strings. A server matches every topic against every session's selectors, so
//! [`Selector::matches`] allocates nothing.

use std::borrow::Cow;

use regex::{Regex, RegexBuilder};

/// Compiled patterns are bounded, so one selector cannot take a server's memory.
const PATTERN_SIZE_LIMIT: usize = 1 << 20;

/// Why a string is not a topic selector.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectorError {
    /// The string was empty.
    #[error("empty topic selector: give a path such as `a/b` or a pattern such as `?a//`")]
    Empty,
    /// The first character names a selector kind that is not supported (the JavaScript
    /// client rejects `$`, `%`, `&` and `<`).
    #[error("topic selector {expression:?} starts with {first:?}, which names no supported kind: use `>` (path), `?` (split-path pattern), `*` (full-path pattern) or `#` (set)")]
    UnsupportedKind {
        /// The selector.
        expression: String,
        /// Its first character.
        first: char,
    },
    /// A selector set had an empty member (`////` at its start or end, or twice in a row).
    #[error("selector set {expression:?} has an empty member")]
    EmptyMember {
        /// The set.
        expression: String,
    },
    /// A pattern is not a regular expression the `regex` crate accepts.
    #[error("topic selector {expression:?} has an invalid pattern {pattern:?}: {source}")]
    InvalidPattern {
        /// The selector.
        expression: String,
        /// The pattern as given.
        pattern: String,
        /// Why the regex crate refused it.
        #[source]
        source: regex::Error,
    },
}

/// The kind of a selector, named by its first character.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SelectorKind {
    /// `>`, or no prefix: one topic path.
    Path,
    /// `?`: one regular expression per path segment.
    SplitPathPattern,
    /// `*`: one regular expression over the whole path.
    FullPathPattern,
    /// `#`: any of several selectors, joined by `////`.
    Set,
}

impl SelectorKind {
    /// The prefix character of this kind.
    pub fn prefix(self) -> char {
        match self {
            SelectorKind::Path => '>',
            SelectorKind::SplitPathPattern => '?',
            SelectorKind::FullPathPattern => '*',
            SelectorKind::Set => '#',
        }
    }
}

/// A parsed topic selector.
///
/// ```
/// use diffusion_proto::Selector;
///
/// let s: Selector = "?a/b//".parse()?;
/// assert!(s.matches("a/b") && s.matches("a/b/c") && !s.matches("a/bc"));
///
/// // A bare path is a path selector; the JavaScript client sends it with `>`.
/// let bare = Selector::parse("a/b")?;
/// assert!(bare.matches("a/b") && !bare.matches("a/b/c"));
/// assert_eq!(bare.as_str(), "a/b");
/// assert_eq!(bare.normalized(), ">a/b");
/// # Ok::<(), diffusion_proto::SelectorError>(())
/// ```
#[derive(Clone)]
pub struct Selector {
    expression: String,
    form: Form,
}

#[derive(Clone)]
enum Form {
    /// The canonical path: one leading and one trailing `/` removed.
    Path(String),
    SplitPath {
        segments: Vec<Segment>,
        qualifier: Qualifier,
    },
    FullPath(Regex),
    Set(Vec<Selector>),
}

#[derive(Clone)]
enum Segment {
    Literal(String),
    Pattern(Regex),
}

impl Segment {
    fn matches(&self, segment: &str) -> bool {
        match self {
            Segment::Literal(literal) => literal == segment,
            Segment::Pattern(regex) => regex.is_match(segment),
        }
    }
}

/// What a trailing `/` or `//` of a pattern adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Qualifier {
    /// No trailing slash: the matches themselves.
    Matches,
    /// `/`: the descendants of the matches.
    Descendants,
    /// `//`: the matches and their descendants.
    MatchesAndDescendants,
}

impl Qualifier {
    /// Splits the qualifier off a pattern body.
    fn split(body: &str) -> (&str, Qualifier) {
        if let Some(rest) = body.strip_suffix("//") {
            (rest, Qualifier::MatchesAndDescendants)
        } else if let Some(rest) = body.strip_suffix('/') {
            (rest, Qualifier::Descendants)
        } else {
            (body, Qualifier::Matches)
        }
    }
}

impl Selector {
    /// Parses a selector (TOPICS §8.1).
    ///
    /// A string without a kind prefix is a path. Patterns follow the `regex` crate's
    /// syntax, which shares the common subset with the server's Java patterns; `\Q` and
    /// `\E` are read as the letters `Q` and `E`, as the JavaScript client reads them (so
    /// `*a/\Qb\E` selects nothing, as in the official vectors).
    pub fn parse(expression: &str) -> Result<Selector, SelectorError> {
        let form = match expression.chars().next() {
            None => return Err(SelectorError::Empty),
            Some('#') => {
                let mut members = Vec::new();
                for member in expression[1..].split("////") {
                    // A nested set of one member is that member: no recursion, whatever the input.
                    let member = member.trim_start_matches('#');
                    if member.is_empty() {
                        return Err(SelectorError::EmptyMember {
                            expression: expression.to_owned(),
                        });
                    }
                    members.push(Selector {
                        expression: member.to_owned(),
                        form: Form::single(member)?,
                    });
                }
                Form::Set(members)
            }
            Some(_) => Form::single(expression)?,
        };
        Ok(Selector {
            expression: expression.to_owned(),
            form,
        })
    }

    /// Whether the topic at `path` (no leading or trailing `/`) is selected (TOPICS §8.2).
    pub fn matches(&self, path: &str) -> bool {
        match &self.form {
            Form::Path(p) => p == path,
            Form::SplitPath { segments, qualifier } => {
                let mut parts = path.split('/');
                for segment in segments {
                    match parts.next() {
                        Some(part) if segment.matches(part) => {}
                        _ => return false,
                    }
                }
                let deeper = parts.next().is_some();
                match qualifier {
                    Qualifier::Matches => !deeper,
                    Qualifier::Descendants => deeper,
                    Qualifier::MatchesAndDescendants => true,
                }
            }
            Form::FullPath(regex) => regex.is_match(path),
            Form::Set(members) => members.iter().any(|m| m.matches(path)),
        }
    }

    /// The selector as given — what the Python client sends.
    pub fn as_str(&self) -> &str {
        &self.expression
    }

    /// The selector with `>` before a bare path (also inside a set) — what the JavaScript
    /// client sends.
    pub fn normalized(&self) -> Cow<'_, str> {
        match &self.form {
            Form::Set(members) => {
                let normalized: Vec<Cow<'_, str>> = members.iter().map(Selector::normalized).collect();
                if normalized.iter().all(|m| matches!(m, Cow::Borrowed(_))) {
                    Cow::Borrowed(&self.expression)
                } else {
                    Cow::Owned(format!("#{}", normalized.join("////")))
                }
            }
            Form::Path(_) if !self.expression.starts_with('>') => Cow::Owned(format!(">{}", self.expression)),
            _ => Cow::Borrowed(&self.expression),
        }
    }

    /// The kind of this selector.
    pub fn kind(&self) -> SelectorKind {
        match self.form {
            Form::Path(_) => SelectorKind::Path,
            Form::SplitPath { .. } => SelectorKind::SplitPathPattern,
            Form::FullPath(_) => SelectorKind::FullPathPattern,
            Form::Set(_) => SelectorKind::Set,
        }
    }
}

impl Form {
    /// Any form but a set.
    fn single(expression: &str) -> Result<Form, SelectorError> {
        let first = expression.chars().next().ok_or(SelectorError::Empty)?;
        let body = &expression[first.len_utf8()..];
        Ok(match first {
            '>' => Form::Path(canonical_path(body)),
            '?' => {
                let (body, qualifier) = Qualifier::split(body.strip_prefix('/').unwrap_or(body));
                let segments = body
                    .split('/')
                    .map(|segment| {
                        if regex::escape(segment) == segment {
                            Ok(Segment::Literal(segment.to_owned()))
                        } else {
                            compile(expression, segment, "^(?:", ")$").map(Segment::Pattern)
                        }
                    })
                    .collect::<Result<_, _>>()?;
                Form::SplitPath { segments, qualifier }
            }
            '*' => {
                let (body, qualifier) = Qualifier::split(body.strip_prefix('/').unwrap_or(body));
                let suffix = match qualifier {
                    Qualifier::Matches => ")$",
                    Qualifier::Descendants => ")/(?s:.+)$",
                    Qualifier::MatchesAndDescendants => ")(?:/(?s:.+))?$",
                };
                Form::FullPath(compile(expression, body, "^(?:", suffix)?)
            }
            '$' | '%' | '&' | '<' => {
                return Err(SelectorError::UnsupportedKind {
                    expression: expression.to_owned(),
                    first,
                })
            }
            // `#` only reaches here inside a set, where it has been trimmed.
            _ => Form::Path(canonical_path(expression)),
        })
    }
}

/// A path selector's path: one leading and one trailing `/` removed (`>a/b//` is `a/b/`).
fn canonical_path(body: &str) -> String {
    let body = body.strip_prefix('/').unwrap_or(body);
    body.strip_suffix('/').unwrap_or(body).to_owned()
}

/// Compiles `pattern` between `prefix` and `suffix`, reading `\Q` and `\E` as JavaScript does.
fn compile(expression: &str, pattern: &str, prefix: &str, suffix: &str) -> Result<Regex, SelectorError> {
    let mut source = String::with_capacity(prefix.len() + pattern.len() + suffix.len());
    source.push_str(prefix);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(letter @ ('Q' | 'E'))) => {
                source.push(letter);
                chars.next();
            }
            ('\\', Some(escaped)) => {
                source.push(c);
                source.push(escaped);
                chars.next();
            }
            _ => source.push(c),
        }
    }
    source.push_str(suffix);
    RegexBuilder::new(&source)
        .size_limit(PATTERN_SIZE_LIMIT)
        .dfa_size_limit(PATTERN_SIZE_LIMIT)
        .build()
        .map_err(|source| SelectorError::InvalidPattern {
            expression: expression.to_owned(),
            pattern: pattern.to_owned(),
            source,
        })
}

impl std::str::FromStr for Selector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Selector::parse(s)
    }
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.expression)
    }
}

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Selector").field(&self.expression).finish()
    }
}

/// Selectors are equal when their strings are: `a/b` and `>a/b` select the same topics but
/// are different selectors, as a server records them.
impl PartialEq for Selector {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

impl Eq for Selector {}

impl std::hash::Hash for Selector {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.expression.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const PATHS: [&str; 7] = ["a", "a/b", "a/b/c", "a/bc", "ab", "x/a/b", "a/b/c/d"];

    fn selected(expression: &str) -> Vec<&'static str> {
        let selector = Selector::parse(expression).unwrap_or_else(|e| panic!("{expression}: {e}"));
        PATHS.into_iter().filter(|p| selector.matches(p)).collect()
    }

    #[test]
    fn truth_table_of_the_spec() {
        for path_selector in [">a/b", "a/b", ">/a/b/", "?a/b"] {
            assert_eq!(selected(path_selector), ["a/b"], "{path_selector}");
        }
        assert_eq!(selected("?a/b/"), ["a/b/c", "a/b/c/d"]);
        assert_eq!(selected("?a/b//"), ["a/b", "a/b/c", "a/b/c/d"]);
        assert_eq!(selected("?a/.*"), ["a/b", "a/bc"]);
        assert_eq!(selected("?.*/b"), ["a/b"]);
        assert_eq!(selected("*a/b.*"), ["a/b", "a/b/c", "a/bc", "a/b/c/d"]);
        assert_eq!(selected("*a/b/"), ["a/b/c", "a/b/c/d"]);
        assert_eq!(selected("*a/b//"), ["a/b", "a/b/c", "a/b/c/d"]);
        assert_eq!(selected("*.*"), PATHS);
        assert_eq!(selected("#>a////?a/b/"), ["a", "a/b/c", "a/b/c/d"]);
        assert!(selected("a/b//").is_empty());
        assert!(selected(r"*a/\Qb\E").is_empty());
    }

    #[test]
    fn leading_slash_of_a_pattern_body_is_ignored() {
        assert_eq!(selected("?/a/b"), ["a/b"]);
        assert_eq!(selected("*/a/b//"), ["a/b", "a/b/c", "a/b/c/d"]);
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert_eq!(Selector::parse(""), Err(SelectorError::Empty));
        for first in ['$', '%', '&', '<'] {
            let expression = format!("{first}a");
            assert_eq!(
                Selector::parse(&expression),
                Err(SelectorError::UnsupportedKind { expression, first })
            );
        }
        assert!(matches!(
            Selector::parse("?a/(b"),
            Err(SelectorError::InvalidPattern { pattern, .. }) if pattern == "(b"
        ));
        assert!(matches!(
            Selector::parse("#>a////"),
            Err(SelectorError::EmptyMember { .. })
        ));
        assert!(matches!(
            Selector::parse("#>a////$x"),
            Err(SelectorError::UnsupportedKind { .. })
        ));
    }

    #[test]
    fn kinds_and_wire_forms() {
        let cases = [
            ("a/b", SelectorKind::Path, ">a/b"),
            (">a/b", SelectorKind::Path, ">a/b"),
            ("?a", SelectorKind::SplitPathPattern, "?a"),
            ("*a", SelectorKind::FullPathPattern, "*a"),
            ("#>a////?b", SelectorKind::Set, "#>a////?b"),
            ("#a////b", SelectorKind::Set, "#>a////>b"),
        ];
        for (expression, kind, normalized) in cases {
            let s = Selector::parse(expression).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                (s.kind(), s.normalized().as_ref(), s.as_str()),
                (kind, normalized, expression)
            );
            assert_eq!(s.to_string(), expression);
        }
        let path = Selector::parse(">a");
        assert!(matches!(
            path.as_ref().map(Selector::normalized),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn nested_sets_do_not_recurse() {
        let deep = format!("{}>a", "#".repeat(100_000));
        let s = Selector::parse(&deep);
        assert!(s.is_ok_and(|s| s.matches("a")));
    }

    proptest! {
        #[test]
        fn any_string_parses_or_fails_without_panicking(expression in ".{0,24}", path in "[a-c/]{0,8}") {
            if let Ok(selector) = Selector::parse(&expression) {
                let _ = selector.matches(&path);
                let normalized = selector.normalized();
                let again = Selector::parse(&normalized);
                prop_assert!(again.is_ok());
                if let Ok(again) = again {
                    prop_assert_eq!(again.matches(&path), selector.matches(&path));
                }
            }
        }

        #[test]
        fn a_path_selects_exactly_itself(path in "[a-z]{1,4}(/[a-z]{1,4}){0,3}", other in "[a-z]{1,4}(/[a-z]{1,4}){0,3}") {
            let s = Selector::parse(&format!(">{path}"));
            prop_assert!(s.is_ok());
            if let Ok(s) = s {
                prop_assert!(s.matches(&path));
                prop_assert_eq!(s.matches(&other), path == other);
            }
        }
    }
}
