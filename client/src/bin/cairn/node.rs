//! `cairn node replace N`: bring back a node whose data directory was lost.

use cairn_client::Client;
use clap::Subcommand;
use serde_json::json;

use crate::output::Output;

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// Marks node N, whose data directory was lost, for replacement. Then start it again with an
    /// empty data directory: it rejoins every group as a learner, catches up from the other
    /// replicas and only then votes. Refused while N is up with its registered directory.
    Replace {
        /// The node id.
        node_id: u64,
    },
}

pub async fn run(client: &Client, cmd: NodeCommand, out: &Output) -> anyhow::Result<()> {
    match cmd {
        NodeCommand::Replace { node_id } => {
            let replicas = client.replace_node(node_id).await?;
            if out.json {
                out.value(&json!({"node": node_id, "replicas": replicas}));
            } else {
                out.line(&format!(
                    "node {node_id} marked for replacement: start it with an empty data directory; \
                     {replicas} partition replicas (and its controller replica) will be rebuilt from the others"
                ));
            }
            Ok(())
        }
    }
}
