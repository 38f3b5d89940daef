//! Submitting one transaction from an async server and learning where it landed.
//!
//! The HTTP API needs the partition and offset of each submitted record (they are the
//! transaction's origin, hence its id) without blocking a runtime thread, so this is a
//! future-returning producer, idempotent with `acks=all` like [`publish`](super::publish).

use rdkafka::producer::{FutureProducer, FutureRecord};

use super::{KafkaConfig, KafkaResultExt, TransportError};

/// A producer for the transactions topic whose sends can be awaited.
pub struct Submitter {
    producer: FutureProducer,
    topic: String,
}

impl Submitter {
    pub fn new(config: &KafkaConfig, topic: &str) -> Result<Self, TransportError> {
        let producer = config
            .client(&[
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("linger.ms", "1"),
                ("message.timeout.ms", "15000"),
            ])
            .create()
            .kafka(format!("creating producer for topic `{topic}`"))?;
        Ok(Submitter {
            producer,
            topic: topic.to_string(),
        })
    }

    /// Publishes `payload`; resolves to its (partition, offset) once acknowledged.
    pub async fn submit(&self, payload: &[u8]) -> Result<(i32, i64), TransportError> {
        let record = FutureRecord::<(), [u8]>::to(&self.topic).payload(payload);
        let what = || format!("sending to topic `{}`", self.topic);
        let delivery =
            self.producer
                .send_result(record)
                .map_err(|(source, _)| TransportError::Kafka {
                    what: what(),
                    source,
                })?;
        match delivery.await {
            Ok(Ok(at)) => Ok(at),
            Ok(Err((source, _))) => Err(TransportError::Kafka {
                what: what(),
                source,
            }),
            Err(_) => Err(TransportError::Other(format!(
                "{}: the producer was closed before the broker answered",
                what()
            ))),
        }
    }
}
