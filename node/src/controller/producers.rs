//! Producer identities in the controller: which producer ids and epochs were issued.
//!
//! Anonymous producers get ids from blocks (`AllocateProducerIds`) and only ever epoch 0: to
//! start over they take a new id. Named producers (a stable name, like Kafka's
//! `transactional.id`) keep one id per name; each new instance gets a higher epoch and fences
//! every older one, and an instance that could not resolve a send bumps its own epoch without
//! fencing itself. Partition leaders accept an epoch only if it was issued here (see
//! [`ClusterState::check_producer`]), so no request can fence a producer the controller did not.
//!
//! The registry is bounded: at most `max` names, each forgotten `expiry_ms` after its last
//! InitProducer (by the proposing leader's clock, carried in the command).

use serde::{Deserialize, Serialize};

use super::state::{ClusterState, MetaAnswer};

/// Longest producer name, in bytes.
pub const NAME_BYTES_MAX: usize = 249;

/// One named producer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedProducer {
    pub name: String,
    /// Highest epoch issued to this id.
    pub epoch: u32,
    /// First epoch of the current instance: batches with a lower epoch are fenced.
    pub fenced_below: u32,
    /// The proposing leader's clock at the last InitProducer for this name.
    pub last_init_ms: i64,
}

/// Bounds of the named-producer registry, from the proposing leader's configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamedProducerLimits {
    pub max: u64,
    pub expiry_ms: i64,
}

/// The controller's verdict on the identity a produce request carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProducerCheck {
    /// Issued (and not fenced).
    Issued,
    /// A newer instance of this named producer took over.
    Fenced { fenced_below: u32 },
    /// The id or the epoch was never issued (as far as this copy of the metadata knows).
    NotIssued(String),
    /// Not in the registry (an expired name) with an epoch above 0: acceptable only where the
    /// partition already saw that epoch.
    Unregistered,
}

impl ClusterState {
    /// Registers a named producer or issues it a new epoch.
    ///
    /// `instance` is `None` for a new instance (it fences every older one), or the caller's
    /// current `(id, epoch)` to bump that instance's own epoch.
    pub(crate) fn init_named_producer(
        &mut self,
        name: &str,
        instance: Option<(u64, u32)>,
        now_ms: i64,
        limits: &NamedProducerLimits,
    ) -> MetaAnswer {
        if name.is_empty() || name.len() > NAME_BYTES_MAX {
            return MetaAnswer::Invalid(format!("producer name must be 1 to {NAME_BYTES_MAX} bytes"));
        }
        self.named_producers.retain(|_, p| now_ms.saturating_sub(p.last_init_ms) <= limits.expiry_ms);
        self.producer_names.retain(|_, id| self.named_producers.contains_key(id));
        let existing = self.producer_names.get(name).copied();
        match (existing, instance) {
            (Some(id), Some((caller, caller_epoch))) => {
                let Some(p) = self.named_producers.get_mut(&id) else {
                    return MetaAnswer::Invalid("invariant broken: name without producer".into());
                };
                if caller != id || caller_epoch < p.fenced_below {
                    // Another instance took the name over: this one is a zombie.
                    return MetaAnswer::Fenced { current_epoch: p.fenced_below };
                }
                if p.epoch == u32::MAX {
                    return self.register(name, now_ms, limits, true);
                }
                p.epoch += 1;
                p.last_init_ms = now_ms;
                MetaAnswer::Producer { id, epoch: p.epoch }
            }
            (Some(id), None) => {
                let Some(p) = self.named_producers.get_mut(&id) else {
                    return MetaAnswer::Invalid("invariant broken: name without producer".into());
                };
                if p.epoch == u32::MAX {
                    // Epochs exhausted: a fresh id (Kafka does the same).
                    return self.register(name, now_ms, limits, true);
                }
                p.epoch += 1;
                p.fenced_below = p.epoch;
                p.last_init_ms = now_ms;
                MetaAnswer::Producer { id, epoch: p.epoch }
            }
            // Unknown name (new, or its registration expired): a fresh id.
            (None, _) => self.register(name, now_ms, limits, false),
        }
    }

    fn register(&mut self, name: &str, now_ms: i64, limits: &NamedProducerLimits, replacing: bool) -> MetaAnswer {
        if !replacing && self.named_producers.len() as u64 >= limits.max {
            return MetaAnswer::LimitExceeded(format!(
                "the cluster already has {} named producers (the limit, limits.named_producers_max); \
                 unused names are forgotten {} ms after their last use",
                self.named_producers.len(),
                limits.expiry_ms
            ));
        }
        if let Some(old) = self.producer_names.remove(name) {
            self.named_producers.remove(&old);
        }
        let id = self.next_producer_id.max(1);
        self.next_producer_id = id + 1;
        self.named_producers
            .insert(id, NamedProducer { name: name.to_string(), epoch: 0, fenced_below: 0, last_init_ms: now_ms });
        self.producer_names.insert(name.to_string(), id);
        MetaAnswer::Producer { id, epoch: 0 }
    }

    /// Whether registering the new name `name` at `now_ms` would be refused for the cap (what
    /// the leader checks before proposing: a refused name must not cost a log entry).
    pub fn named_registry_full(&self, name: &str, now_ms: i64, limits: &NamedProducerLimits) -> bool {
        if self.producer_names.contains_key(name) {
            return false;
        }
        let live = self.named_producers.values().filter(|p| now_ms.saturating_sub(p.last_init_ms) <= limits.expiry_ms);
        live.count() as u64 >= limits.max
    }

    /// Whether a produce request's producer `(id, epoch)` was issued by the controller.
    pub fn check_producer(&self, id: u64, epoch: u32) -> ProducerCheck {
        if id >= self.next_producer_id.max(1) {
            return ProducerCheck::NotIssued(format!("producer id {id} was never issued"));
        }
        match self.named_producers.get(&id) {
            Some(p) if epoch < p.fenced_below => ProducerCheck::Fenced { fenced_below: p.fenced_below },
            Some(p) if epoch > p.epoch => ProducerCheck::NotIssued(format!(
                "epoch {epoch} of producer {id} was never issued (the highest is {})",
                p.epoch
            )),
            Some(_) => ProducerCheck::Issued,
            None if epoch == 0 => ProducerCheck::Issued,
            None => ProducerCheck::Unregistered,
        }
    }
}
