//! FETCH_QUERY (TOPICS.md §6, §9.8): the topics a selector selects, in path order, filtered by
//! type and path range; with values, properties and (protocol 28 and later) sizes on request;
//! the first or last n; within a byte budget so that no response outgrows a message.

use super::error::TopicTreeError;
use super::tree::{Topic, TopicTree};
use super::Origin;
use crate::handshake::ProtocolVersion;
use crate::message::ServiceId;
use crate::server::{Server, ServerEventKind};
use crate::topics::{FetchRequest, FetchResponse, FetchResult, Selector, ServicePayload, TopicSize};

/// What a result is reckoned to cost in the response besides its path and value: type,
/// flags, properties index, size information.
const RESULT_OVERHEAD: usize = 16;

impl Server {
    /// Answers a fetch with the topics it asks for.
    pub(super) fn fetch_from(
        &mut self,
        origin: Origin,
        version: ProtocolVersion,
        request: &FetchRequest,
    ) -> Result<(), TopicTreeError> {
        let selector = Selector::parse(&request.selector)?;
        let server_limit = usize::try_from(self.config.max_message_size).unwrap_or(usize::MAX);
        let budget = match usize::try_from(request.maximum_result_size) {
            Ok(asked) if asked > 0 => asked.min(server_limit),
            _ => server_limit,
        };
        let response = fetch(&self.topics, &selector, request, version, budget);
        let payload = response
            .to_bytes(version)
            .map_err(|source| TopicTreeError::Response {
                service: ServiceId::FETCH_QUERY,
                source,
            })?;
        self.respond(origin, payload);
        self.origin_event(
            origin,
            ServerEventKind::Fetch {
                selector: request.selector.clone(),
                results: response.results.len(),
                has_more: response.has_more,
            },
        );
        Ok(())
    }
}

/// Whether `path` lies between the request's range ends.
fn in_range(path: &str, request: &FetchRequest) -> bool {
    let after =
        |end: &crate::topics::FetchRange| path > end.path.as_str() || (end.inclusive && path == end.path);
    let before =
        |end: &crate::topics::FetchRange| path < end.path.as_str() || (end.inclusive && path == end.path);
    request.from.as_ref().is_none_or(after) && request.to.as_ref().is_none_or(before)
}

/// The response: a positive limit takes the first n, a negative one the last n, 0 none;
/// `has more` when more topics matched than were returned.
pub(super) fn fetch(
    tree: &TopicTree,
    selector: &Selector,
    request: &FetchRequest,
    version: ProtocolVersion,
    budget: usize,
) -> FetchResponse {
    let mut matching = tree.iter().filter(|t| {
        request.topic_types.contains(t.specification.topic_type())
            && in_range(&t.path, request)
            && selector.matches(&t.path)
    });
    let wanted = usize::try_from(request.limit.unsigned_abs()).unwrap_or(usize::MAX);
    let (chosen, mut has_more): (Vec<&Topic>, bool) = if request.limit >= 0 {
        let first = matching.by_ref().take(wanted).collect();
        (first, matching.next().is_some())
    } else {
        let all: Vec<&Topic> = matching.collect();
        let skip = all.len().saturating_sub(wanted);
        (all[skip..].to_vec(), skip > 0)
    };
    // Sizes exist from protocol 28 (TOPICS §6.2).
    let sizes = request.with_sizes && version.number() >= 28;
    let mut results = Vec::with_capacity(chosen.len());
    let mut used = 0usize;
    for topic in chosen {
        let value = topic.value().filter(|_| request.with_values);
        let cost = topic.path.len() + value.map_or(0, |v| v.len()) + RESULT_OVERHEAD;
        if used.saturating_add(cost) > budget {
            has_more = true;
            break;
        }
        used += cost;
        results.push(FetchResult {
            path: topic.path.to_string(),
            topic_type: topic.specification.topic_type(),
            value: value.cloned(),
            properties: request.with_properties.then(|| topic.properties.clone()),
            size: topic.value().filter(|_| sizes).map(|v| TopicSize::Value {
                size: i32::try_from(v.len()).unwrap_or(i32::MAX),
            }),
        });
    }
    FetchResponse { results, has_more }
}
