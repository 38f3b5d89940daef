//! Kafka transport.
