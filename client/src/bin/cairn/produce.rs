//! `cairn produce TOPIC`: one record per input line (or per `--delimiter`), or one given with
//! `--value` / `--value-file`, through the idempotent producer (batched, pipelined, retried
//! without duplicates).
//!
//! ```text
//!  [reader task] stdin ─► records (line numbers) ─► bounded channel ─┐
//!  [main] send each ─► acks in input order ─► printed as they arrive (--json: one per record)
//! ```
//! Every record is accounted for: acknowledged (partition, offset) or not written (its line
//! number and why); the exit code is 0 only when every record was written.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_client::schema::{AvroSerde, AvroWriter, SchemaRegistryClient};
use cairn_client::{Client, ClientError, Condition, Header, Producer, ProducerConfig, Record, RecordAck};
use clap::Args;
use futures::future::BoxFuture;
use futures::stream::{FuturesOrdered, StreamExt};
use futures::FutureExt;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::output::Output;
use crate::produce_input::{parse_delimiter, parse_record, Encoding, Input, InputFormat};

#[derive(Args, Debug)]
#[command(after_help = "Examples:
  echo hello | cairn produce orders                         one record per line
  printf 'order-1\\tplaced\\n' | cairn produce orders -K '\\t'  KEY<TAB>VALUE lines
  cairn produce orders --input json < events.jsonl          {\"key\",\"value\",\"headers\",\"partition\"}
  cairn produce blobs --value-file photo.jpg -k photo-1     one binary record
  find . -print0 | cairn produce files -D '\\0'              null-delimited records
  cairn --json produce orders < lines.txt                   one acknowledgement per record, as they arrive
  cairn produce ledger -p 0 --expect-offset 42 --value x    appended only if partition 0 ends at offset 42
  cairn produce accounts -k acct-7 --expect-key-offset none --value opened
                                                            only if no record with key acct-7 exists yet")]
pub struct ProduceArgs {
    pub topic: String,
    /// Partition to write to (default: by key hash, or round-robin without a key).
    #[arg(short = 'p', long)]
    pub partition: Option<u32>,
    /// Record key for every record (all records of one key go to one partition, in order).
    #[arg(short = 'k', long)]
    pub key: Option<String>,
    /// Each input record is a key, SEP, then the value, split at the first SEP (one byte, or \t, \0).
    #[arg(short = 'K', long = "key-separator", value_name = "SEP", conflicts_with = "key")]
    pub key_separator: Option<String>,
    /// Produce this one value instead of reading stdin.
    #[arg(long, conflicts_with = "value_file")]
    pub value: Option<String>,
    /// Produce one record whose value is this file's bytes (binary safe).
    #[arg(long, value_name = "FILE")]
    pub value_file: Option<std::path::PathBuf>,
    /// Header KEY=VALUE on every record (repeatable; in --input json, per record instead).
    #[arg(short = 'H', long = "header")]
    pub headers: Vec<String>,
    /// What each input record is: the value (with -K: key SEP value), or a JSON object
    /// {"key": .., "value": .., "headers": {..}, "partition": N}.
    #[arg(long = "input", value_enum, default_value = "value")]
    pub input: InputFormat,
    /// How keys, values and header values are written in the input.
    #[arg(long, value_enum, default_value = "raw")]
    pub encoding: Encoding,
    /// The byte between input records (one byte, or \n, \t, \0 for null-delimited binary).
    #[arg(short = 'D', long, default_value = "\\n")]
    pub delimiter: String,
    /// How records without -p choose a partition: murmur2 of the key (Kafka's; round-robin for
    /// records without a key), round-robin or random.
    #[arg(long, value_enum, default_value = "murmur2")]
    pub partitioner: Partitioner,
    /// Stable producer name: a newer producer with the same name fences this one.
    #[arg(long)]
    pub producer_name: Option<String>,
    /// How long to wait for more records before sending a partial batch (ms).
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Conditional append: every input record in one batch, appended only if the partition's
    /// end offset is exactly N (else OFFSET_MISMATCH, nothing appended). One unbatched request,
    /// not through the idempotent producer (so not with --producer-name).
    #[arg(long, value_name = "N", conflicts_with = "producer_name")]
    pub expect_offset: Option<u64>,
    /// Conditional append on the records' one key: appended only if the key's last record is at
    /// offset N, or with `none` if the key has no record yet.
    #[arg(long, value_name = "N|none", value_parser = crate::produce_conditional::parse_key_offset, conflicts_with = "producer_name")]
    pub expect_key_offset: Option<crate::produce_conditional::KeyExpectation>,
    /// Encode each input value, JSON text, with this Avro schema, framed with its id in
    /// Confluent's wire format; the schema is registered under `<topic>-value` first (see
    /// --no-register). Needs the registry (--registry).
    #[arg(long, value_name = "FILE")]
    pub value_schema: Option<std::path::PathBuf>,
    /// With --value-schema: the schema must be registered already (looked up, not registered).
    #[arg(long, requires = "value_schema")]
    pub no_register: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Partitioner {
    Murmur2,
    RoundRobin,
    Random,
}

fn parse_headers(raw: &[String]) -> anyhow::Result<Vec<Header>> {
    raw.iter()
        .map(|h| {
            let (k, v) = h.split_once('=').ok_or_else(|| anyhow::anyhow!("header {h:?} is not KEY=VALUE"))?;
            Ok(Header { key: k.to_string(), value: v.as_bytes().to_vec().into() })
        })
        .collect()
}

/// Acks still being awaited before `produce` stops reading input (bounds memory).
const OUTSTANDING_MAX: usize = 50_000;
/// Input records read ahead of the sender.
const READ_AHEAD: usize = 1024;
/// How often, without --json, a long run says how far it got.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// One input record, numbered from 1 (a line number with the default delimiter).
type Numbered = (u64, anyhow::Result<Input>);

/// Reads records from stdin, numbered, until EOF or a read error.
async fn read_input(args: (InputFormat, Option<u8>, Encoding, u8), tx: mpsc::Sender<Numbered>) {
    let (format, key_sep, enc, delim) = args;
    let mut input = BufReader::new(tokio::io::stdin());
    let mut buf = Vec::new();
    let mut n = 0u64;
    loop {
        buf.clear();
        let read = match input.read_until(delim, &mut buf).await {
            Ok(0) => return,
            Ok(r) => r,
            Err(e) => {
                let _ = tx.send((n + 1, Err(anyhow::anyhow!("reading stdin: {e}")))).await;
                return;
            }
        };
        n += 1;
        let body = if buf.last() == Some(&delim) { &buf[..read - 1] } else { &buf[..] };
        if tx.send((n, parse_record(body, format, key_sep, enc))).await.is_err() {
            return;
        }
    }
}

/// Where everything ended: offsets per partition, records not written.
#[derive(Default)]
struct Tally {
    ranges: BTreeMap<u32, (u64, u64, u64)>,
    written: u64,
    failed: Vec<u64>,
}

impl Tally {
    fn note(&mut self, out: &Output, n: u64, res: Result<RecordAck, String>) {
        match res {
            Ok(ack) => {
                self.written += 1;
                if out.json {
                    out.value(
                        &json!({"record": n, "topic": ack.topic, "partition": ack.partition, "offset": ack.offset}),
                    );
                }
                let r = self.ranges.entry(ack.partition).or_insert((ack.offset, ack.offset, 0));
                r.0 = r.0.min(ack.offset);
                r.1 = r.1.max(ack.offset);
                r.2 += 1;
            }
            Err(e) => {
                self.failed.push(n);
                if out.json {
                    out.value(&json!({"record": n, "error": e}));
                }
                eprintln!("cairn: record {n}: not written: {e}");
            }
        }
    }
}

type Ack = BoxFuture<'static, (u64, Result<RecordAck, String>)>;

/// Every input record (for one conditional batch); the first bad one is an error.
async fn read_all(
    args: &ProduceArgs,
    single: Option<Vec<u8>>,
    key_sep: Option<u8>,
    delim: u8,
    headers: &[Header],
) -> anyhow::Result<Vec<Record>> {
    let record = |input: Input| Record {
        key: input.key.or_else(|| args.key.clone().map(|k| k.into_bytes().into())).unwrap_or_default(),
        value: input.value,
        headers: if args.input == InputFormat::Json { input.headers } else { headers.to_vec() },
        timestamp_ms: 0,
    };
    if let Some(value) = single {
        return Ok(vec![record(Input { key: None, value: value.into(), headers: Vec::new(), partition: None })]);
    }
    let (tx, mut rx) = mpsc::channel::<Numbered>(READ_AHEAD);
    tokio::spawn(read_input((args.input, key_sep, args.encoding, delim), tx));
    let mut records = Vec::new();
    while let Some((n, input)) = rx.recv().await {
        let input = input.map_err(|e| anyhow::anyhow!("input record {n}: {e:#}; nothing was appended"))?;
        anyhow::ensure!(
            input.partition.is_none() || input.partition == args.partition,
            "input record {n} names a partition: a conditional append goes to one partition (-p)"
        );
        anyhow::ensure!(
            records.len() < crate::produce_conditional::RECORDS_MAX,
            "a conditional append is one batch of at most {} records; the input has more",
            crate::produce_conditional::RECORDS_MAX
        );
        records.push(record(input));
    }
    Ok(records)
}

/// The encoder of `--value-schema`, if given.
async fn value_writer(args: &ProduceArgs, registry: &str) -> anyhow::Result<Option<AvroWriter>> {
    let Some(path) = &args.value_schema else { return Ok(None) };
    let schema =
        tokio::fs::read_to_string(path).await.map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let serde = AvroSerde::new(SchemaRegistryClient::new(registry)?);
    let subject = format!("{}-value", args.topic);
    let w = serde.writer(&subject, &schema, !args.no_register).await.map_err(|e| anyhow::anyhow!("{subject}: {e}"))?;
    Ok(Some(w))
}

/// `value` (JSON text) encoded by `writer`; as it is without one.
fn encoded(writer: Option<&AvroWriter>, value: bytes::Bytes) -> Result<bytes::Bytes, String> {
    let Some(w) = writer else { return Ok(value) };
    let json: serde_json::Value = serde_json::from_slice(&value).map_err(|e| format!("not JSON: {e}"))?;
    w.write(&json).map(Into::into).map_err(|e| e.to_string())
}

pub async fn run(client: Arc<Client>, args: ProduceArgs, out: &Output, registry: &str) -> anyhow::Result<()> {
    let writer = value_writer(&args, registry).await?;
    let partitions = client.partition_count(&args.topic).await?;
    if let Some(p) = args.partition {
        anyhow::ensure!(
            p < partitions,
            "topic {} has {partitions} partition(s) (0 to {}); there is no partition {p} [UNKNOWN_PARTITION]",
            args.topic,
            partitions - 1
        );
    }
    let headers = parse_headers(&args.headers)?;
    anyhow::ensure!(
        args.input != InputFormat::Json || (args.key_separator.is_none() && args.headers.is_empty()),
        "--input json carries keys and headers in each record; -K and -H do not apply"
    );
    let key_sep = args.key_separator.as_deref().map(parse_delimiter).transpose()?;
    let delim = parse_delimiter(&args.delimiter)?;
    let single = match (&args.value, &args.value_file) {
        (Some(v), _) => Some(v.clone().into_bytes()),
        (None, Some(path)) => {
            Some(tokio::fs::read(path).await.map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?)
        }
        (None, None) => None,
    };
    if args.expect_offset.is_some() || args.expect_key_offset.is_some() {
        anyhow::ensure!(writer.is_none(), "--value-schema does not combine with conditional appends yet");
        let condition =
            Condition { expected_offset: args.expect_offset, expected_key_offset: args.expect_key_offset.map(|k| k.0) };
        let records = read_all(&args, single, key_sep, delim, &headers).await?;
        return crate::produce_conditional::run(client, &args.topic, args.partition, records, condition, out).await;
    }
    let cfg = ProducerConfig {
        name: args.producer_name.clone(),
        linger: Duration::from_millis(args.linger_ms),
        ..ProducerConfig::default()
    };
    let producer = Producer::new(client, cfg).await?;
    let (tx, mut rx) = mpsc::channel::<Numbered>(READ_AHEAD);
    match single {
        Some(value) => {
            let input = Input { key: None, value: value.into(), headers: Vec::new(), partition: None };
            tx.try_send((1, Ok(input))).map_err(|_| anyhow::anyhow!("internal: input queue"))?;
            drop(tx);
        }
        None => {
            tokio::spawn(read_input((args.input, key_sep, args.encoding, delim), tx));
        }
    }
    let mut acks: FuturesOrdered<Ack> = FuturesOrdered::new();
    let mut tally = Tally::default();
    let mut round_robin = 0u32;
    let mut input_done = false;
    let mut progress_at = Instant::now() + PROGRESS_EVERY;
    // Acknowledgements are printed as they arrive, in input order, while input is still read.
    while !input_done || !acks.is_empty() {
        tokio::select! {
            next = rx.recv(), if !input_done && acks.len() < OUTSTANDING_MAX => match next {
                None => input_done = true,
                Some((n, Err(e))) => {
                    // Bad input: this record is refused; the others go on.
                    acks.push_back(futures::future::ready((n, Err(format!("{e:#}")))).boxed());
                }
                Some((n, Ok(input))) => {
                    let value = match encoded(writer.as_ref(), input.value) {
                        Ok(v) => v,
                        Err(e) => {
                            acks.push_back(futures::future::ready((n, Err(e))).boxed());
                            continue;
                        }
                    };
                    let partition = input.partition.or(args.partition).or(match args.partitioner {
                        Partitioner::Murmur2 => None,
                        Partitioner::RoundRobin => {
                            round_robin = round_robin.wrapping_add(1);
                            Some(round_robin % partitions)
                        }
                        Partitioner::Random => Some(rand::random_range(0..partitions)),
                    });
                    let record = Record {
                        key: input.key.or_else(|| args.key.clone().map(|k| k.into_bytes().into())).unwrap_or_default(),
                        value,
                        headers: if args.input == InputFormat::Json { input.headers } else { headers.clone() },
                        timestamp_ms: 0,
                    };
                    let ack: Ack = match producer.send(&args.topic, partition, record).await {
                        Ok(delivery) => async move { (n, delivery.await.map_err(|e: ClientError| e.to_string())) }.boxed(),
                        Err(e) => futures::future::ready((n, Err(e.to_string()))).boxed(),
                    };
                    acks.push_back(ack);
                }
            },
            Some((n, res)) = acks.next(), if !acks.is_empty() => tally.note(out, n, res),
        }
        if !out.json && Instant::now() >= progress_at {
            eprintln!("cairn: {} record(s) acknowledged so far", tally.written);
            progress_at = Instant::now() + PROGRESS_EVERY;
        }
    }
    if !out.json {
        for (p, (lo, hi, n)) in &tally.ranges {
            out.line(&format!("{}/{p}: {n} record(s) at offsets {lo} to {hi}", args.topic));
        }
        out.line(&format!("produced {} record(s) to {}", tally.written, args.topic));
    }
    if !tally.failed.is_empty() {
        let shown: Vec<String> = tally.failed.iter().take(20).map(u64::to_string).collect();
        let more =
            if tally.failed.len() > 20 { format!(" and {} more", tally.failed.len() - 20) } else { String::new() };
        anyhow::bail!(
            "{} record(s) not written (input record {}{more}); {} written",
            tally.failed.len(),
            shown.join(", "),
            tally.written
        );
    }
    Ok(())
}
