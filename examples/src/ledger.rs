//! An event-sourced bank ledger. Each account is a key of the `accounts` topic and its events
//! (`Opened`, `Withdrawn`, `Deposited`) are the only state; balances are folds over them.
//!
//! ```text
//!  transfer A→B:  refresh ─► balance(A) ≥ amount? ─► Withdrawn on A, expecting A's last offset
//!                                 ▲  OFFSET_MISMATCH (someone wrote A) ─┘ (read A again, decide again)
//!                 then Deposited on B, expecting B's last offset (skipped if B already has it)
//! ```
//!
//! A withdrawal is decided on the account's state as of its last record, and appended only if
//! that is still its last record: two writers can never both spend the same balance. A transfer
//! is two appends on two keys; a writer that stops between them leaves a withdrawal without its
//! deposit, which [`Ledger::pending_deposits`] finds and any writer completes (the deposit
//! carries the transfer id, and is itself conditional, so it lands once).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use cairn_client::{Client, ClientError, Condition, FetchedRecord, Producer, Record, RecordExt};
use serde::{Deserialize, Serialize};

/// One event of an account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    Opened { initial: u64 },
    Withdrawn { amount: u64, transfer: String, to: String },
    Deposited { amount: u64, transfer: String, from: String },
}

/// An account as its events leave it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub balance: u64,
    /// Offset of the account's last event: what the next write expects.
    pub last_offset: Option<u64>,
    /// The lowest balance the account ever had (the audit: never below zero).
    pub lowest: i64,
    /// Transfers deposited here (by id).
    pub deposits: BTreeSet<String>,
    /// Transfers withdrawn from here: id → (to, amount).
    pub withdrawals: BTreeMap<String, (String, u64)>,
}

/// The state of every account, and how far each partition was read.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub topic: String,
    pub accounts: BTreeMap<String, Account>,
    /// Next offset to read, per partition.
    pub positions: BTreeMap<u32, u64>,
    /// Records that were not ledger events (counted, never applied).
    pub foreign: u64,
}

/// Why a transfer did not happen.
#[derive(Debug)]
pub enum TransferError {
    Insufficient { account: String, balance: u64, amount: u64 },
    UnknownAccount(String),
    Client(ClientError),
    Read(anyhow::Error),
}

impl std::error::Error for TransferError {}

impl std::fmt::Display for TransferError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TransferError::Insufficient { account, balance, amount } => {
                write!(f, "{account} holds {balance}, less than {amount}")
            }
            TransferError::UnknownAccount(a) => write!(f, "no account {a}"),
            TransferError::Client(e) => write!(f, "{e}"),
            TransferError::Read(e) => write!(f, "reading the ledger: {e:#}"),
        }
    }
}

impl Ledger {
    pub fn new(topic: &str) -> Ledger {
        Ledger { topic: topic.to_string(), ..Ledger::default() }
    }

    /// The whole ledger, replayed from offset 0 of every partition.
    ///
    /// # Errors
    /// Reads that fail after the client's retries.
    pub async fn replay(client: &Client, topic: &str) -> anyhow::Result<Ledger> {
        let mut l = Ledger::new(topic);
        l.refresh(client).await?;
        Ok(l)
    }

    /// A snapshot saved by [`Ledger::save`], brought up to date with the records after it.
    ///
    /// # Errors
    /// An unreadable snapshot; reads that fail.
    pub async fn from_snapshot(client: &Client, path: &Path) -> anyhow::Result<Ledger> {
        let mut l: Ledger = serde_json::from_slice(&std::fs::read(path)?)?;
        l.refresh(client).await?;
        Ok(l)
    }

    /// Saves the state and positions (a snapshot: replay resumes after it).
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)?;
        std::fs::rename(tmp, path)?;
        Ok(())
    }

    /// Reads every partition from its position to its end offset and applies the records.
    ///
    /// # Errors
    /// Reads that fail after the client's retries.
    pub async fn refresh(&mut self, client: &Client) -> anyhow::Result<()> {
        for p in 0..client.partition_count(&self.topic).await? {
            let from = self.positions.get(&p).copied().unwrap_or(0);
            for r in crate::log::read_partition(client, &self.topic, p, from).await? {
                self.apply(p, &r);
            }
        }
        Ok(())
    }

    /// Applies one record of partition `partition`.
    pub fn apply(&mut self, partition: u32, r: &FetchedRecord) {
        self.positions.insert(partition, r.offset + 1);
        let (Ok(key), Ok(event)) = (std::str::from_utf8(&r.key), serde_json::from_slice::<Event>(&r.value)) else {
            self.foreign += 1;
            return;
        };
        let a = self.accounts.entry(key.to_string()).or_default();
        a.last_offset = Some(r.offset);
        match event {
            Event::Opened { initial } => a.balance += initial,
            Event::Withdrawn { amount, transfer, to } => {
                let after = a.balance as i64 - amount as i64;
                a.lowest = a.lowest.min(after);
                a.balance = a.balance.saturating_sub(amount);
                a.withdrawals.insert(transfer, (to, amount));
            }
            Event::Deposited { amount, transfer, .. } => {
                a.balance += amount;
                a.deposits.insert(transfer);
            }
        }
    }

    /// Money in every account.
    pub fn total(&self) -> u64 {
        self.accounts.values().map(|a| a.balance).sum()
    }

    /// Withdrawals whose deposit is not in the log (yet): (transfer, to, amount, from).
    pub fn pending_deposits(&self) -> Vec<(String, String, u64, String)> {
        let mut out = Vec::new();
        for (from, a) in &self.accounts {
            for (id, (to, amount)) in &a.withdrawals {
                if !self.accounts.get(to).is_some_and(|b| b.deposits.contains(id)) {
                    out.push((id.clone(), to.clone(), *amount, from.clone()));
                }
            }
        }
        out
    }

    /// Opens `account` with `initial` unless it exists (a conditional append: no record yet).
    ///
    /// # Errors
    /// Appends that fail for another reason than an existing account.
    pub async fn open(&mut self, producer: &Producer, account: &str, initial: u64) -> Result<bool, TransferError> {
        let opened = append(producer, &self.topic, account, &Event::Opened { initial }, None).await?;
        Ok(opened.is_some())
    }

    /// Moves `amount` from `from` to `to` as transfer `id`: a conditional withdrawal, then a
    /// conditional deposit, each retried after reading the account again when another writer
    /// got there first.
    ///
    /// # Errors
    /// [`TransferError::Insufficient`] (nothing written); client errors.
    pub async fn transfer(
        &mut self,
        client: &Client,
        producer: &Producer,
        (from, to, amount): (&str, &str, u64),
        id: &str,
    ) -> Result<(), TransferError> {
        if !self.accounts.contains_key(to) {
            return Err(TransferError::UnknownAccount(to.to_string()));
        }
        loop {
            self.refresh(client).await.map_err(TransferError::Read)?;
            let a = self.accounts.get(from).ok_or_else(|| TransferError::UnknownAccount(from.to_string()))?;
            if a.balance < amount {
                return Err(TransferError::Insufficient { account: from.into(), balance: a.balance, amount });
            }
            let e = Event::Withdrawn { amount, transfer: id.into(), to: to.into() };
            if append(producer, &self.topic, from, &e, a.last_offset).await?.is_some() {
                break;
            }
        }
        self.deposit(client, producer, (id, to, amount, from)).await
    }

    /// Deposits transfer `id` on `to` unless it is there already.
    ///
    /// # Errors
    /// Client errors.
    pub async fn deposit(
        &mut self,
        client: &Client,
        producer: &Producer,
        (id, to, amount, from): (&str, &str, u64, &str),
    ) -> Result<(), TransferError> {
        loop {
            self.refresh(client).await.map_err(TransferError::Read)?;
            let b = self.accounts.get(to).ok_or_else(|| TransferError::UnknownAccount(to.to_string()))?;
            if b.deposits.contains(id) {
                return Ok(());
            }
            let e = Event::Deposited { amount, transfer: id.into(), from: from.into() };
            if append(producer, &self.topic, to, &e, b.last_offset).await?.is_some() {
                return Ok(());
            }
        }
    }
}

/// Appends `event` to `account` if the account's last record is at `expected` (None: the
/// account has none). Returns the offset, or None when another writer got there first.
async fn append(
    producer: &Producer,
    topic: &str,
    account: &str,
    event: &Event,
    expected: Option<u64>,
) -> Result<Option<u64>, TransferError> {
    let value = serde_json::to_vec(event).map_err(|e| TransferError::Read(e.into()))?;
    let record = Record::keyed(account.to_string(), value);
    let delivery = producer
        .send_conditional(topic, None, record, Condition::key_at(expected))
        .await
        .map_err(TransferError::Client)?;
    match delivery.await {
        Ok(ack) => Ok(Some(ack.offset)),
        Err(e) if e.mismatch().is_some() => Ok(None),
        Err(e) => Err(TransferError::Client(e)),
    }
}

/// What the audit found: money, and balances that went below zero.
#[derive(Debug, Serialize)]
pub struct Audit {
    pub accounts: usize,
    pub total: u64,
    pub pending_deposits: usize,
    pub in_flight: u64,
    pub overdrawn: Vec<String>,
    pub snapshot_matches_replay: Option<bool>,
}

/// Audits `ledger`: totals, money in flight, accounts that were ever overdrawn.
pub fn audit(ledger: &Ledger) -> Audit {
    let pending = ledger.pending_deposits();
    Audit {
        accounts: ledger.accounts.len(),
        total: ledger.total(),
        pending_deposits: pending.len(),
        in_flight: pending.iter().map(|p| p.2).sum(),
        overdrawn: ledger.accounts.iter().filter(|(_, a)| a.lowest < 0).map(|(k, _)| k.clone()).collect(),
        snapshot_matches_replay: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(offset: u64, key: &str, e: &Event) -> FetchedRecord {
        FetchedRecord {
            offset,
            key: key.as_bytes().to_vec().into(),
            value: serde_json::to_vec(e).expect("json").into(),
            ..FetchedRecord::default()
        }
    }

    #[test]
    fn balances_are_folds_and_an_unfinished_transfer_is_pending() {
        let mut l = Ledger::new("accounts");
        l.apply(0, &rec(0, "a", &Event::Opened { initial: 100 }));
        l.apply(0, &rec(1, "b", &Event::Opened { initial: 5 }));
        l.apply(0, &rec(2, "a", &Event::Withdrawn { amount: 30, transfer: "t1".into(), to: "b".into() }));
        assert_eq!((l.total(), l.pending_deposits().len()), (75, 1));
        l.apply(0, &rec(3, "b", &Event::Deposited { amount: 30, transfer: "t1".into(), from: "a".into() }));
        assert_eq!((l.total(), l.pending_deposits().len()), (105, 0));
        assert_eq!(l.accounts["a"].last_offset, Some(2));
        assert_eq!(l.positions[&0], 4);
        // An overdraft (only possible without conditional appends) is what the audit reports.
        l.apply(0, &rec(4, "b", &Event::Withdrawn { amount: 99, transfer: "t2".into(), to: "a".into() }));
        assert_eq!(audit(&l).overdrawn, vec!["b".to_string()]);
    }
}
