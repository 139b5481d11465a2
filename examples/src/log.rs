//! Reading a topic's log directly (replay): what event-sourced state and checks are built from.

use cairn_client::{Client, FetchedRecord, OffsetSpec};

/// Every committed record of `topic`/`partition` from `from` to the end offset as of the call.
///
/// # Errors
/// Fetch errors after the client's retries.
pub async fn read_partition(
    client: &Client,
    topic: &str,
    partition: u32,
    from: u64,
) -> anyhow::Result<Vec<FetchedRecord>> {
    let end = client.list_offsets(topic, partition, OffsetSpec::Latest).await?.offset;
    let mut out = Vec::new();
    let mut next = from;
    while next < end {
        let batch = client.fetch(topic, partition, next, 1 << 20, 500).await?;
        let Some(last) = batch.records.last().map(|r| r.offset) else { continue };
        next = last + 1;
        out.extend(batch.records.into_iter().filter(|r| r.offset < end));
    }
    Ok(out)
}

/// Every committed record of every partition of `topic`, as `(partition, record)`, partition by
/// partition in offset order.
///
/// # Errors
/// As [`read_partition`].
pub async fn read_topic(client: &Client, topic: &str) -> anyhow::Result<Vec<(u32, FetchedRecord)>> {
    let mut out = Vec::new();
    for p in 0..client.partition_count(topic).await? {
        out.extend(read_partition(client, topic, p, 0).await?.into_iter().map(|r| (p, r)));
    }
    Ok(out)
}

/// Creates `topic` unless it exists (replication 3, or fewer on a smaller cluster).
///
/// # Errors
/// The creation failed for another reason.
pub async fn ensure_topic(client: &Client, topic: &str, partitions: u32) -> anyhow::Result<()> {
    if client.partition_count(topic).await.is_ok() {
        return Ok(());
    }
    let nodes = client.describe_cluster().await?.nodes.len() as u32;
    match client.create_topic(topic, partitions, nodes.clamp(1, 3), None).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(cairn_client::ErrorCode::TopicAlreadyExists) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
