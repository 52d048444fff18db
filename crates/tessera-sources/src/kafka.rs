//! The Kafka connector: every partition of a topic, JSON values, read from where the dataset's
//! table says each partition was committed up to.
//!
//! Each partition's next offset is a Delta application transaction of the dataset's table,
//! `tessera-source:NAME:p{PARTITION}`, committed with the rows read from it; a consumer that
//! restarts (after a crash, on another instance) goes on from there, so no record is read twice
//! or skipped. No consumer group is used: the table is where the offsets are kept. A partition
//! without a committed offset starts at its earliest record. Whole fetched record batches are
//! taken, so a partition is resumed at a batch boundary.
//!
//! A record's value is one JSON object (a row); one that is not (not JSON, an array, empty) is
//! quarantined with the pull, naming its partition and offset, never dropped.
//!
//! Options (`kafka:`): `brokers` (host:port list), `topic`, `format` (`json`), `batchRows` (rows a
//! commit holds at most, default 50,000). The client speaks plain TCP without authentication, and
//! reads record batches uncompressed or compressed with gzip or snappy; a batch compressed with
//! lz4 or zstd fails the pull, saying so (those codecs would bring C libraries into the build).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use rskafka::BackoffConfig;
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use tessera_core::SourceSpec;

use crate::error::{Result, SourceError};
use crate::{
    Committed, Connector, OpenContext, OptionProblem, Pull, PulledRows, SourceReader, position_id,
};

pub struct KafkaConnector;

const DEFAULT_BATCH_ROWS: usize = 50_000;
/// How long a fetch waits for records when a partition has none.
const FETCH_WAIT_MS: i32 = 100;
/// Bytes one fetch asks a partition for at most.
const FETCH_MAX_BYTES: i32 = 8 << 20;
/// How long connecting and each request may retry before the pull fails (and backs off).
const REQUEST_DEADLINE: Duration = Duration::from_secs(10);

fn brokers(source: &SourceSpec) -> Vec<String> {
    source
        .options
        .get("brokers")
        .and_then(|b| b.as_array())
        .map(|b| {
            b.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[async_trait]
impl Connector for KafkaConnector {
    fn kind(&self) -> &'static str {
        "kafka"
    }

    fn needs_secret(&self) -> bool {
        false
    }

    fn check(&self, source: &SourceSpec, _columns: &[String]) -> Vec<OptionProblem> {
        let mut problems = Vec::new();
        let brokers = brokers(source);
        if brokers.is_empty() {
            problems.push(OptionProblem::new(
                "/kafka",
                "missing `brokers`: the bootstrap brokers as host:port",
            ));
        }
        for (i, broker) in brokers.iter().enumerate() {
            let ok = broker
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                problems.push(OptionProblem::new(
                    format!("/kafka/brokers/{i}"),
                    format!("{broker:?} is not host:port"),
                ));
            }
        }
        if source.secret.is_some() {
            problems.push(OptionProblem::new(
                "/secret",
                "the kafka connector connects without authentication: it takes no secret",
            ));
        }
        problems
    }

    fn origin(
        &self,
        source: &SourceSpec,
        _secret: Option<&str>,
        _context: &OpenContext,
    ) -> Option<(String, String)> {
        let broker = brokers(source).into_iter().next()?;
        let topic = source.options.get("topic")?.as_str()?;
        Some((format!("kafka://{broker}"), topic.to_string()))
    }

    async fn open(
        &self,
        source: &SourceSpec,
        _secret: Option<String>,
        _context: &OpenContext,
    ) -> Result<Box<dyn SourceReader>> {
        let topic = source
            .options
            .get("topic")
            .and_then(|t| t.as_str())
            .unwrap_or_default()
            .to_string();
        let client = ClientBuilder::new(brokers(source))
            .client_id("tessera")
            .backoff_config(BackoffConfig {
                deadline: Some(REQUEST_DEADLINE),
                ..Default::default()
            })
            .build()
            .await
            .map_err(|e| SourceError::Unreachable(format!("the Kafka brokers: {e}")))?;
        Ok(Box::new(KafkaReader {
            name: source.name.clone(),
            topic,
            client: Arc::new(client),
            partitions: HashMap::new(),
            batch_rows: source
                .options
                .get("batchRows")
                .and_then(|b| b.as_u64())
                .map_or(DEFAULT_BATCH_ROWS, |b| b as usize),
        }))
    }
}

struct KafkaReader {
    name: String,
    topic: String,
    client: Arc<Client>,
    partitions: HashMap<i32, Arc<PartitionClient>>,
    batch_rows: usize,
}

impl KafkaReader {
    /// The topic's partitions, with a client for each (new partitions are picked up).
    async fn partitions(&mut self) -> Result<Vec<(i32, Arc<PartitionClient>)>> {
        let topics = self
            .client
            .list_topics()
            .await
            .map_err(|e| SourceError::Unreachable(format!("listing the topics: {e}")))?;
        let Some(topic) = topics.into_iter().find(|t| t.name == self.topic) else {
            return Err(SourceError::Invalid(format!(
                "the Kafka brokers have no topic {:?}",
                self.topic
            )));
        };
        let mut out = Vec::new();
        for partition in topic.partitions {
            if !self.partitions.contains_key(&partition) {
                let client = self
                    .client
                    .partition_client(self.topic.clone(), partition, UnknownTopicHandling::Error)
                    .await
                    .map_err(|e| {
                        SourceError::Unreachable(format!(
                            "partition {partition} of {}: {e}",
                            self.topic
                        ))
                    })?;
                self.partitions.insert(partition, Arc::new(client));
            }
            out.push((partition, self.partitions[&partition].clone()));
        }
        Ok(out)
    }
}

#[async_trait]
impl SourceReader for KafkaReader {
    async fn pull(&mut self, committed: &dyn Committed, max_rows: usize) -> Result<Option<Pull>> {
        let limit = max_rows.min(self.batch_rows).max(1);
        let mut ndjson = Vec::new();
        let mut count = 0;
        let mut unreadable = Vec::new();
        let mut positions = Vec::new();
        let mut behind = 0i64;
        let mut more = false;
        let mut newest: Option<chrono::DateTime<chrono::Utc>> = None;
        for (partition, client) in self.partitions().await? {
            let id = position_id(&self.name, &format!("p{partition}"));
            let next = match committed.position(&id).await? {
                Some(next) => next,
                None => client.get_offset(OffsetAt::Earliest).await.map_err(|e| {
                    SourceError::Unreachable(format!(
                        "partition {partition}'s earliest offset: {e}"
                    ))
                })?,
            };
            if count >= limit {
                more = true;
                continue;
            }
            let (records, high_watermark) = client
                .fetch_records(next, 1..FETCH_MAX_BYTES, FETCH_WAIT_MS)
                .await
                .map_err(|e| {
                    SourceError::Unreachable(format!(
                        "fetching partition {partition} of {} from offset {next}: {e}",
                        self.topic
                    ))
                })?;
            let Some(last) = records.last().map(|r| r.offset) else {
                behind += (high_watermark - next).max(0);
                continue;
            };
            for r in &records {
                newest = newest.max(Some(r.record.timestamp));
                let value = r.record.value.as_deref().unwrap_or_default();
                let object = serde_json::from_slice::<serde_json::Value>(value)
                    .ok()
                    .filter(serde_json::Value::is_object);
                if object.is_some() && !value.contains(&b'\n') {
                    ndjson.extend_from_slice(value);
                    ndjson.push(b'\n');
                } else {
                    // An object written over several lines is one row: written again on one.
                    match object {
                        Some(o) => {
                            serde_json::to_writer(&mut ndjson, &o)
                                .map_err(|e| SourceError::Read(e.to_string()))?;
                            ndjson.push(b'\n');
                        }
                        None => unreadable.push((
                            count,
                            format!(
                                "record {}@{partition}:{} is not a JSON object",
                                self.topic, r.offset
                            ),
                        )),
                    }
                }
                count += 1;
            }
            positions.push((id, last + 1));
            behind += (high_watermark - (last + 1)).max(0);
            more |= last + 1 < high_watermark;
        }
        if positions.is_empty() {
            return Ok(None);
        }
        positions.sort();
        let describe = positions
            .iter()
            .map(|(id, next)| format!("{}={next}", id.rsplit(':').next().unwrap_or(id)))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Some(Pull {
            rows: PulledRows::Ndjson(Bytes::from(ndjson)),
            count,
            positions,
            batch_id: None,
            merge_on: None,
            describe: format!(
                "{} offsets {describe} ({behind} record(s) behind)",
                self.topic
            ),
            // Caught up: no lag; behind: how old the newest record read is.
            lag_seconds: Some(if behind == 0 {
                0.0
            } else {
                newest.map_or(0.0, |t| {
                    (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0
                })
            }),
            unreadable,
            more,
        }))
    }
}
