//! The host's own copy of a reading, as collected and before thresholds are applied.
//!
//! Plugin readings are converted once, right after `collect` returns, so that nothing
//! the host keeps points into a plugin library, and so that isolated plugins can send
//! the same type as JSON from their child process.

use hbc_plugin_api::{Level, Reading, Value};
use serde::{Deserialize, Serialize};

/// A reading value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SampleValue {
    #[serde(rename = "f")]
    F64(f64),
    #[serde(rename = "i")]
    I64(i64),
    #[serde(rename = "b")]
    Bool(bool),
    #[serde(rename = "t")]
    Text(String),
}

impl SampleValue {
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            SampleValue::F64(v) => Some(*v),
            SampleValue::I64(v) => Some(*v as f64),
            SampleValue::Bool(b) => Some(f64::from(u8::from(*b))),
            SampleValue::Text(_) => None,
        }
    }
}

impl std::fmt::Display for SampleValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SampleValue::F64(v) if v.fract() == 0.0 && v.abs() < 1e15 => write!(f, "{v:.0}"),
            SampleValue::F64(v) => write!(f, "{v:.2}"),
            SampleValue::I64(v) => write!(f, "{v}"),
            SampleValue::Bool(v) => write!(f, "{v}"),
            SampleValue::Text(v) => f.write_str(v),
        }
    }
}

/// One reading as collected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub key: String,
    pub value: SampleValue,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub unit: String,
    /// Plugin-decided level as a Nagios code (0-3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<u8>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

impl Sample {
    pub fn state_level(&self) -> Option<Level> {
        self.state.map(|c| Level::from_code(i64::from(c)))
    }
}

impl From<&Reading> for Sample {
    fn from(r: &Reading) -> Sample {
        let value = match &r.value {
            Value::F64(v) => SampleValue::F64(*v),
            Value::I64(v) => SampleValue::I64(*v),
            Value::Bool(v) => SampleValue::Bool(*v),
            Value::Text(v) => SampleValue::Text(v.to_string()),
        };
        Sample {
            key: r.key.to_string(),
            value,
            unit: r.unit.to_string(),
            state: r.state.into_option().map(|l| l as u8),
            message: r.message.to_string(),
        }
    }
}

/// Plugin-api level to wire level.
pub fn wire_level(l: Level) -> hb_proto::Level {
    match l {
        Level::Ok => hb_proto::Level::Ok,
        Level::Warning => hb_proto::Level::Warning,
        Level::Critical => hb_proto::Level::Critical,
        Level::Unknown => hb_proto::Level::Unknown,
    }
}

/// Sample value to wire value.
pub fn wire_value(v: &SampleValue) -> hb_proto::Value {
    match v {
        SampleValue::F64(v) => hb_proto::Value::F64(*v),
        SampleValue::I64(v) => hb_proto::Value::I64(*v),
        SampleValue::Bool(v) => hb_proto::Value::Bool(*v),
        SampleValue::Text(v) => hb_proto::Value::Text(v.clone()),
    }
}
