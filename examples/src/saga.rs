//! The order saga (the e-commerce flow): one topic of events keyed by order id, and four
//! services, each a consumer group of its own that reacts to some events by appending the next.
//!
//! ```text
//!  OrderPlaced ─inventory─► InventoryReserved ─payment─► PaymentProcessed ─shipping─► ShippingScheduled ─order─► OrderCompleted
//!       │                          │
//!       │                          └─payment─► PaymentFailed ─inventory─► InventoryReleased ─order─► OrderCancelled
//!       └─inventory─► InventoryRejected (out of stock) ─order─► OrderCancelled
//! ```
//!
//! Every event has exactly one reaction, so an order's events form a chain. A reaction to the
//! event at offset `o` is appended with `expected_key_offset = o`: if the event was delivered
//! again (a restart before the commit, a rebalance) and its reaction is already in the log, the
//! append is refused (OFFSET_MISMATCH) and the service moves on. Delivery is at least once; the
//! effect of each step is exactly once.
//!
//! The inventory service keeps stock in memory, rebuilt from the log when it starts (the
//! reservations and releases are events too), so it runs as one instance at a time: scale it by
//! keying stock by SKU in a topic of its own with conditional appends, as the ledger example
//! does for accounts.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cairn_client::consumer::{Consumer, ConsumerConfig, Subscription};
use cairn_client::{Client, ClientError, Condition, FetchedRecord, Producer, ProducerConfig, Record, RecordExt};
use serde::{Deserialize, Serialize};

/// SKUs the shop sells.
pub const SKUS: u32 = 5;

/// One event of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    OrderPlaced { sku: String, qty: u64, amount: u64 },
    InventoryReserved { sku: String, qty: u64, amount: u64 },
    InventoryRejected { sku: String, qty: u64, available: u64 },
    PaymentProcessed { amount: u64 },
    PaymentFailed { amount: u64, sku: String, qty: u64 },
    ShippingScheduled {},
    InventoryReleased { sku: String, qty: u64 },
    OrderCompleted {},
    OrderCancelled { reason: String },
}

impl Event {
    pub fn name(&self) -> &'static str {
        match self {
            Event::OrderPlaced { .. } => "OrderPlaced",
            Event::InventoryReserved { .. } => "InventoryReserved",
            Event::InventoryRejected { .. } => "InventoryRejected",
            Event::PaymentProcessed { .. } => "PaymentProcessed",
            Event::PaymentFailed { .. } => "PaymentFailed",
            Event::ShippingScheduled {} => "ShippingScheduled",
            Event::InventoryReleased { .. } => "InventoryReleased",
            Event::OrderCompleted {} => "OrderCompleted",
            Event::OrderCancelled { .. } => "OrderCancelled",
        }
    }
}

/// The four services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Service {
    Order,
    Inventory,
    Payment,
    Shipping,
}

/// Settings every service shares.
#[derive(Clone, Debug)]
pub struct Settings {
    pub topic: String,
    /// Units of each SKU in stock at the start.
    pub stock: u64,
    /// Share of payments declined, in percent (decided from the order id, so a restarted
    /// payment service decides the same).
    pub fail_percent: u64,
}

/// Stable across processes and runs (FNV-1a).
fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// Whether the payment of `order` is declined.
pub fn declined(order: &str, fail_percent: u64) -> bool {
    fnv(order) % 100 < fail_percent
}

/// Units reserved (not released) per SKU: the inventory service's state.
#[derive(Debug, Default)]
pub struct Stock {
    pub reserved: BTreeMap<String, u64>,
}

impl Stock {
    fn apply(&mut self, e: &Event) {
        match e {
            Event::InventoryReserved { sku, qty, .. } => *self.reserved.entry(sku.clone()).or_default() += qty,
            Event::InventoryReleased { sku, qty } => {
                let r = self.reserved.entry(sku.clone()).or_default();
                *r = r.saturating_sub(*qty);
            }
            _ => {}
        }
    }
}

/// The reaction of `service` to `event` (None: not its event).
pub fn react(service: Service, s: &Settings, stock: &Stock, order: &str, event: &Event) -> Option<Event> {
    match (service, event) {
        (Service::Inventory, Event::OrderPlaced { sku, qty, amount }) => {
            let available = s.stock.saturating_sub(stock.reserved.get(sku).copied().unwrap_or(0));
            Some(if *qty <= available {
                Event::InventoryReserved { sku: sku.clone(), qty: *qty, amount: *amount }
            } else {
                Event::InventoryRejected { sku: sku.clone(), qty: *qty, available }
            })
        }
        (Service::Inventory, Event::PaymentFailed { sku, qty, .. }) => {
            Some(Event::InventoryReleased { sku: sku.clone(), qty: *qty })
        }
        (Service::Payment, Event::InventoryReserved { sku, qty, amount }) => Some(if declined(order, s.fail_percent) {
            Event::PaymentFailed { amount: *amount, sku: sku.clone(), qty: *qty }
        } else {
            Event::PaymentProcessed { amount: *amount }
        }),
        (Service::Shipping, Event::PaymentProcessed { .. }) => Some(Event::ShippingScheduled {}),
        (Service::Order, Event::ShippingScheduled {}) => Some(Event::OrderCompleted {}),
        (Service::Order, Event::InventoryReleased { .. }) => {
            Some(Event::OrderCancelled { reason: "payment failed".into() })
        }
        (Service::Order, Event::InventoryRejected { .. }) => {
            Some(Event::OrderCancelled { reason: "out of stock".into() })
        }
        _ => None,
    }
}

fn producer_config() -> ProducerConfig {
    ProducerConfig { linger: Duration::ZERO, delivery_timeout: Duration::from_secs(60), ..ProducerConfig::default() }
}

/// Appends `event` for `order` on `partition` if the order's last event is at `expected`
/// (None: the order has no event yet). Ok(false): another append got there first.
async fn append(
    producer: &Producer,
    topic: &str,
    partition: Option<u32>,
    order: &str,
    event: &Event,
    expected: Option<u64>,
) -> Result<bool, ClientError> {
    let value = serde_json::to_vec(event).map_err(|e| ClientError::InvalidArgument(e.to_string()))?;
    let record = Record::keyed(order.to_string(), value);
    let delivery = producer.send_conditional(topic, partition, record, Condition::key_at(expected)).await?;
    match delivery.await {
        Ok(_) => Ok(true),
        Err(e) if e.mismatch().is_some() => Ok(false),
        Err(e) => Err(e),
    }
}

fn decode(r: &FetchedRecord) -> Option<(String, Event)> {
    Some((String::from_utf8(r.key.to_vec()).ok()?, serde_json::from_slice(&r.value).ok()?))
}

/// Places orders `first .. first + count` (order ids `order-N`), each exactly once (the first
/// event of its key: a conditional append expecting no record).
///
/// # Errors
/// Appends that fail for another reason than an order placed already.
pub async fn place(client: Arc<Client>, s: &Settings, first: u64, count: u64) -> anyhow::Result<u64> {
    let producer = Producer::new(client, producer_config()).await?;
    let mut pending = Vec::new();
    for n in first..first + count {
        let order = format!("order-{n}");
        let h = fnv(&order);
        let event =
            Event::OrderPlaced { sku: format!("sku-{}", h % u64::from(SKUS)), qty: 1 + h % 3, amount: 10 + h % 90 };
        let value = serde_json::to_vec(&event)?;
        let d = producer.send_conditional(&s.topic, None, Record::keyed(order, value), Condition::key_at(None)).await?;
        pending.push(d);
    }
    let mut placed = 0;
    for d in pending {
        match d.await {
            Ok(_) => placed += 1,
            Err(e) if e.mismatch().is_some() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(placed)
}

/// Runs `service` until the process is stopped: joins its group, reacts to its events. A write
/// whose outcome stays unknown ends the session: the state is rebuilt from the log and the
/// group rejoined (the event is delivered again, and its reaction appended only if it is not
/// in the log).
///
/// # Errors
/// Only a failure to rebuild the state from the log.
pub async fn run(client: Arc<Client>, service: Service, s: Settings) -> anyhow::Result<()> {
    let producer = Producer::new(client.clone(), producer_config()).await?;
    loop {
        let mut stock = Stock::default();
        if service == Service::Inventory {
            for (_, r) in crate::log::read_topic(&client, &s.topic).await? {
                if let Some((_, e)) = decode(&r) {
                    stock.apply(&e);
                }
            }
            tracing::info!(reserved = ?stock.reserved, "inventory rebuilt from the log");
        }
        let group = format!("saga-{}", format!("{service:?}").to_lowercase());
        let consumer = Consumer::subscribe(
            client.clone(),
            ConsumerConfig::new(group),
            Subscription::Topics(vec![s.topic.clone()]),
        );
        let mut consumer = consumer.await?;
        if let Err(e) = session(&mut consumer, &producer, service, &s, &mut stock).await {
            tracing::warn!(error = %e, "a reaction's outcome is unknown: rebuilding and rejoining");
            drop(consumer);
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

async fn session(
    consumer: &mut Consumer,
    producer: &Producer,
    service: Service,
    s: &Settings,
    stock: &mut Stock,
) -> Result<(), ClientError> {
    loop {
        for r in consumer.poll(Duration::from_secs(1)).await? {
            let Ok(order) = std::str::from_utf8(&r.key) else { continue };
            let Ok(event) = serde_json::from_slice::<Event>(&r.value) else { continue };
            let Some(reaction) = react(service, s, stock, order, &event) else { continue };
            // The reaction follows this very event, or nothing: a redelivered event whose
            // reaction is in the log already is refused here.
            if append(producer, &s.topic, Some(r.partition), order, &reaction, Some(r.offset)).await? {
                tracing::debug!(order, from = event.name(), to = reaction.name(), "reacted");
                stock.apply(&reaction);
            }
        }
    }
}

/// What [`check`] found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub orders: usize,
    pub completed: usize,
    pub cancelled_out_of_stock: usize,
    pub cancelled_payment_failed: usize,
    /// Orders not finished (yet).
    pub open: Vec<String>,
    /// Orders whose events are not one of the saga's paths.
    pub broken: Vec<String>,
    /// Units reserved and not released, per SKU (must equal the completed orders' units).
    pub reserved: BTreeMap<String, u64>,
    pub completed_units: BTreeMap<String, u64>,
    /// Payments whose outcome disagrees with the decline rule.
    pub wrong_payments: Vec<String>,
}

impl Report {
    /// Every order in exactly one final state by a valid path, and inventory balanced.
    pub fn ok(&self, stock: u64) -> bool {
        self.open.is_empty()
            && self.broken.is_empty()
            && self.wrong_payments.is_empty()
            && self.reserved == self.completed_units
            && self.reserved.values().all(|r| *r <= stock)
    }
}

/// The saga's paths, as event names.
const PATHS: [&[&str]; 3] = [
    &["OrderPlaced", "InventoryReserved", "PaymentProcessed", "ShippingScheduled", "OrderCompleted"],
    &["OrderPlaced", "InventoryReserved", "PaymentFailed", "InventoryReleased", "OrderCancelled"],
    &["OrderPlaced", "InventoryRejected", "OrderCancelled"],
];

/// Reads the whole topic and checks every order (see [`Report::ok`]).
///
/// # Errors
/// Reads that fail.
pub async fn check(client: &Client, s: &Settings) -> anyhow::Result<Report> {
    let mut orders: BTreeMap<String, Vec<Event>> = BTreeMap::new();
    for (_, r) in crate::log::read_topic(client, &s.topic).await? {
        if let Some((order, e)) = decode(&r) {
            orders.entry(order).or_default().push(e);
        }
    }
    let mut rep = Report { orders: orders.len(), ..Report::default() };
    let mut stock = Stock::default();
    for (order, events) in &orders {
        for e in events {
            stock.apply(e);
        }
        let names: Vec<&str> = events.iter().map(Event::name).collect();
        if !PATHS.iter().any(|p| p.starts_with(&names)) {
            rep.broken.push(format!("{order}: {}", names.join(" → ")));
            continue;
        }
        match events.last() {
            Some(Event::OrderCompleted {}) => {
                rep.completed += 1;
                if let Some(Event::OrderPlaced { sku, qty, .. }) = events.first() {
                    *rep.completed_units.entry(sku.clone()).or_default() += qty;
                }
            }
            Some(Event::OrderCancelled { reason }) if reason == "out of stock" => rep.cancelled_out_of_stock += 1,
            Some(Event::OrderCancelled { .. }) => rep.cancelled_payment_failed += 1,
            _ => rep.open.push(order.clone()),
        }
        let paid = names.contains(&"PaymentProcessed");
        let failed = names.contains(&"PaymentFailed");
        if (paid && declined(order, s.fail_percent)) || (failed && !declined(order, s.fail_percent)) {
            rep.wrong_payments.push(order.clone());
        }
    }
    rep.reserved = stock.reserved.into_iter().filter(|(_, v)| *v > 0).collect();
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings { topic: "orders".into(), stock: 4, fail_percent: 30 }
    }

    #[test]
    fn each_event_has_exactly_one_reaction_and_stock_bounds_reservations() {
        let s = settings();
        let mut stock = Stock::default();
        let placed = Event::OrderPlaced { sku: "sku-1".into(), qty: 3, amount: 20 };
        let r = react(Service::Inventory, &s, &stock, "order-1", &placed).expect("inventory reacts");
        assert_eq!(r.name(), "InventoryReserved");
        stock.apply(&r);
        // One unit left: the next order of 3 is rejected.
        let r2 = react(Service::Inventory, &s, &stock, "order-2", &placed).expect("inventory reacts");
        assert_eq!(r2, Event::InventoryRejected { sku: "sku-1".into(), qty: 3, available: 1 });
        for service in [Service::Order, Service::Payment, Service::Shipping] {
            assert!(react(service, &s, &stock, "order-1", &placed).is_none(), "{service:?}");
        }
        let failed = Event::PaymentFailed { amount: 20, sku: "sku-1".into(), qty: 3 };
        let release = react(Service::Inventory, &s, &stock, "order-1", &failed).expect("compensation");
        stock.apply(&release);
        assert_eq!(stock.reserved["sku-1"], 0);
        assert_eq!(react(Service::Order, &s, &stock, "order-1", &release).map(|e| e.name()), Some("OrderCancelled"));
    }

    #[test]
    fn the_decline_rule_is_stable_and_near_its_share() {
        let declined_count = (0..1000).filter(|n| declined(&format!("order-{n}"), 30)).count();
        assert!((200..400).contains(&declined_count), "{declined_count}");
        assert_eq!(declined("order-7", 30), declined("order-7", 30));
    }

    #[test]
    fn only_the_sagas_paths_pass_the_check() {
        let names = ["OrderPlaced", "InventoryReserved", "PaymentProcessed", "PaymentFailed"];
        assert!(!PATHS.iter().any(|p| p.starts_with(&names)));
        assert!(PATHS.iter().any(|p| p.starts_with(&["OrderPlaced", "InventoryRejected"])));
    }
}
