//! Dead-letter conventions shared by consumers that route failing records to `<topic>.dlq` and
//! by `cairn dlq replay`, which sends them back: the topic name and the headers a dead letter
//! carries (besides the original record's key, value and headers).

/// Why processing failed (the last error).
pub const HEADER_REASON: &str = "dlq.reason";
/// Where the record came from: topic, partition and offset.
pub const HEADER_TOPIC: &str = "dlq.topic";
pub const HEADER_PARTITION: &str = "dlq.partition";
pub const HEADER_OFFSET: &str = "dlq.offset";
/// How many times processing was tried.
pub const HEADER_ATTEMPTS: &str = "dlq.attempts";
/// When the record was given up (ms since the Unix epoch).
pub const HEADER_FAILED_AT: &str = "dlq.failed_at_ms";
/// On a replayed record: the dead letter it came from (`topic/partition/offset`).
pub const HEADER_REPLAYED_FROM: &str = "dlq.replayed_from";

/// The dead-letter topic of `topic`.
pub fn dlq_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// The topic a dead-letter topic belongs to (`orders.dlq` → `orders`).
pub fn original_topic(dlq: &str) -> Option<&str> {
    dlq.strip_suffix(".dlq").filter(|t| !t.is_empty())
}

/// Whether a header is one of the dead-letter headers (removed again on replay).
pub fn is_dlq_header(key: &str) -> bool {
    key.starts_with("dlq.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letter_topics_name_their_topic() {
        assert_eq!(dlq_topic("payments"), "payments.dlq");
        assert_eq!(original_topic("payments.dlq"), Some("payments"));
        assert_eq!(original_topic(".dlq"), None);
        assert_eq!(original_topic("payments"), None);
        assert!(is_dlq_header(HEADER_REASON) && !is_dlq_header("trace.id"));
    }
}
