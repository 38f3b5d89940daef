//! Client configuration shared by every producer, consumer and admin client.

use rdkafka::ClientConfig;

use super::TransportError;

/// Where the cluster is and how to reach it.
///
/// `settings` are raw librdkafka properties (`security.protocol`, `sasl.*`, `ssl.*`, ...)
/// applied last, so an operator can override anything we set by default.
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    pub brokers: String,
    pub settings: Vec<(String, String)>,
}

impl KafkaConfig {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            settings: Vec::new(),
        }
    }

    /// Parses `key=value` pairs as given to `-X`.
    pub fn with_settings<I, S>(mut self, pairs: I) -> Result<Self, TransportError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for pair in pairs {
            let pair = pair.as_ref();
            let (key, value) = pair
                .split_once('=')
                .filter(|(k, _)| !k.trim().is_empty())
                .ok_or_else(|| TransportError::BadSetting(pair.to_string()))?;
            self.settings
                .push((key.trim().to_string(), value.to_string()));
        }
        Ok(self)
    }

    /// A client config with our defaults, then the `-X` overrides.
    pub fn client(&self, defaults: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers);
        // librdkafka logs connection failures itself; keep them visible but terse.
        config.set("log_level", "3");
        for (key, value) in defaults {
            config.set(*key, *value);
        }
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        config
    }
}
