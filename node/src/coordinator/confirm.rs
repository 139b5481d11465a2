//! Leadership checks for coordinator answers that appended nothing.
//!
//! An answer that appended a record is proof enough: the append committed in this leader's term
//! after the request arrived. A heartbeat that changed nothing, or a read of committed offsets,
//! appends nothing; a deposed coordinator (partitioned away, or paused while another replica
//! took over) that answered it from memory would extend a member's session the new coordinator
//! knows nothing of — the member keeps reading partitions the new coordinator has since given to
//! someone else — or serve offsets a newer commit has moved past. So such an answer waits for a
//! leadership check (a Raft read barrier) that *started after* the request was received. One
//! check runs at a time and serves every answer that asked before it started.
//!
//! ```text
//!  answer ─► ticket = ++asked ─► wait confirmed.upto >= ticket (or failed >= ticket: refuse)
//!  [task] asked changed ─► upto = asked ─► read barrier ─► confirmed.upto = upto
//! ```

use std::sync::Arc;
use std::time::Duration;

use cairn_raft::group::PartitionGroup;
use tokio::sync::watch;

/// How long one check may take before the answers waiting on it are refused.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The outcome of the checks so far, by ticket.
#[derive(Clone, Debug, Default)]
struct Checked {
    /// Every ticket up to this one was confirmed by a check that started after it was issued.
    upto: u64,
    /// The last ticket a failed check covered.
    failed_upto: u64,
}

/// Issues tickets and runs the checks (the task ends when this is dropped).
pub struct Confirmer {
    asked: watch::Sender<u64>,
    checked: watch::Receiver<Checked>,
}

/// What an answer waits on: see [`Confirmer::ticket`].
pub struct Ticket {
    n: u64,
    checked: watch::Receiver<Checked>,
}

impl Confirmer {
    pub fn start(replica: Arc<PartitionGroup>) -> Confirmer {
        let (asked, asked_rx) = watch::channel(0u64);
        let (checked_tx, checked) = watch::channel(Checked::default());
        tokio::spawn(run(replica, asked_rx, checked_tx));
        Confirmer { asked, checked }
    }

    /// A ticket for a request received before this call.
    pub fn ticket(&self) -> Ticket {
        let mut n = 0;
        self.asked.send_modify(|a| {
            *a += 1;
            n = *a;
        });
        Ticket { n, checked: self.checked.clone() }
    }
}

impl Ticket {
    /// Whether this replica was still the leader at some moment after the ticket was issued.
    pub async fn confirmed(mut self) -> bool {
        loop {
            {
                let c = self.checked.borrow_and_update();
                if c.upto >= self.n {
                    return true;
                }
                if c.failed_upto >= self.n {
                    return false;
                }
            }
            if self.checked.changed().await.is_err() {
                return false;
            }
        }
    }
}

async fn run(replica: Arc<PartitionGroup>, mut asked: watch::Receiver<u64>, checked: watch::Sender<Checked>) {
    while asked.changed().await.is_ok() {
        let upto = *asked.borrow_and_update();
        let ok = replica.caught_up_as_leader(CHECK_TIMEOUT).await.is_ok();
        checked.send_modify(|c| {
            if ok {
                c.upto = c.upto.max(upto);
            } else {
                c.failed_upto = c.failed_upto.max(upto);
            }
        });
    }
}
