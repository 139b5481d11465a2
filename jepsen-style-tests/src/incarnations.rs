//! Topic incarnations of a run and their *virtual partitions*.
//!
//! A run may create topics as it goes and delete and re-create them (same name, new topic id).
//! Each incarnation gets its own block of partition numbers in the history (incarnation k of a
//! run with P partitions per topic has partitions k·P .. k·P + P − 1), so every checker, which
//! reasons per partition, keeps the incarnations apart: a record of an old incarnation read as
//! the new one shows as one value at two partitions (`duplicate`) or two values at one offset
//! (`inconsistent-offsets`). Records acknowledged in an incarnation that was later deleted are
//! gone with it; the loss checkers skip those partitions. A run that adds partitions to its
//! topic reserves room for them: each incarnation's block is as wide as the largest count.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use rand::Rng;

/// One incarnation of a topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incarnation {
    pub name: String,
    pub topic_id: u64,
    /// Its first virtual partition.
    pub base: u32,
    pub alive: bool,
}

/// Every incarnation of the run, in creation order.
#[derive(Debug)]
pub struct Incarnations {
    /// Partitions per topic now (grows with `add-partitions`).
    partitions: AtomicU32,
    /// Virtual partitions reserved per incarnation: the most `partitions` may reach.
    stride: u32,
    all: Mutex<Vec<Incarnation>>,
}

impl Incarnations {
    /// `partitions` per topic.
    pub fn new(partitions: u32) -> Incarnations {
        Incarnations::with_room(partitions, partitions)
    }

    /// `partitions` per topic, growing to at most `max` during the run.
    pub fn with_room(partitions: u32, max: u32) -> Incarnations {
        Incarnations {
            partitions: AtomicU32::new(partitions),
            stride: max.max(partitions),
            all: Mutex::new(Vec::new()),
        }
    }

    /// Every topic now has `partitions` partitions (acknowledged by the cluster); never more
    /// than the room reserved, never fewer than before.
    pub fn grow(&self, partitions: u32) {
        self.partitions.fetch_max(partitions.min(self.stride), Ordering::SeqCst);
    }

    fn with<T>(&self, f: impl FnOnce(&mut Vec<Incarnation>) -> T) -> T {
        f(&mut self.all.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn partitions(&self) -> u32 {
        self.partitions.load(Ordering::SeqCst)
    }

    /// Registers a new incarnation (a created topic); returns its first virtual partition.
    pub fn add(&self, name: &str, topic_id: u64) -> u32 {
        let p = self.stride;
        self.with(|all| {
            let base = all.len() as u32 * p;
            all.push(Incarnation { name: name.to_string(), topic_id, base, alive: true });
            base
        })
    }

    /// Marks the live incarnation of `name` deleted; returns its virtual partitions.
    pub fn delete(&self, name: &str) -> Vec<u32> {
        let p = self.partitions();
        self.with(|all| {
            all.iter_mut()
                .filter(|i| i.alive && i.name == name)
                .flat_map(|i| {
                    i.alive = false;
                    i.base..i.base + p
                })
                .collect()
        })
    }

    /// The live incarnations.
    pub fn live(&self) -> Vec<Incarnation> {
        self.with(|all| all.iter().filter(|i| i.alive).cloned().collect())
    }

    /// A random live virtual partition: (incarnation, partition within the topic). Half the
    /// picks go to the newest incarnation, the one nodes are most likely not to know yet.
    pub fn pick(&self, rng: &mut impl Rng) -> Option<(Incarnation, u32)> {
        let live = self.live();
        let newest = live.last()?.clone();
        let i = if rng.random_bool(0.5) { newest } else { live[rng.random_range(0..live.len())].clone() };
        Some((i, rng.random_range(0..self.partitions())))
    }

    /// The virtual partition of `partition` in incarnation `topic_id` of `name`; `None` when
    /// that id is not one of this run's (0: a server that does not report ids).
    pub fn virtual_partition(&self, name: &str, topic_id: u64, partition: u32) -> Option<u32> {
        self.with(|all| all.iter().find(|i| i.name == name && i.topic_id == topic_id).map(|i| i.base + partition))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_incarnation_has_its_own_block_of_partitions() {
        let inc = Incarnations::new(4);
        assert_eq!(inc.add("t", 10), 0);
        assert_eq!(inc.add("u", 11), 4);
        assert_eq!(inc.delete("t"), vec![0, 1, 2, 3]);
        assert_eq!(inc.add("t", 12), 8, "the re-created topic is a new incarnation");
        assert_eq!(inc.virtual_partition("t", 10, 2), Some(2), "the deleted one still maps (late acks)");
        assert_eq!(inc.virtual_partition("t", 12, 2), Some(10));
        assert_eq!(inc.virtual_partition("t", 0, 2), None);
        let live: Vec<u64> = inc.live().iter().map(|i| i.topic_id).collect();
        assert_eq!(live, vec![11, 12]);
    }

    #[test]
    fn added_partitions_fit_in_the_room_reserved() {
        let inc = Incarnations::with_room(2, 4);
        assert_eq!(inc.add("t", 10), 0);
        inc.grow(3);
        assert_eq!(inc.partitions(), 3);
        inc.grow(2);
        assert_eq!(inc.partitions(), 3, "never fewer");
        inc.grow(9);
        assert_eq!(inc.partitions(), 4, "never past the room");
        assert_eq!(inc.add("u", 11), 4, "the next block starts after the room");
        assert_eq!(inc.virtual_partition("t", 10, 3), Some(3));
    }
}
