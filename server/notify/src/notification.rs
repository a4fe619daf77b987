//! What the policy decides to send: a [`Notification`] with its [`Kind`], the state it
//! announces and the details templates show. Stored as JSON in the outbox, so fields are
//! only ever added (with defaults), never renamed.

use serde::{Deserialize, Serialize};

use hbd_core::registry::LevelName;

/// What a notification announces. Routes select on these names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A host passed its liveness deadline.
    Down,
    /// A watched host never sent a heartbeat since hbd started.
    NeverSeen,
    /// A host that was announced DOWN sent enough heartbeats again.
    Up,
    /// A host's overall level changed (to WARNING, CRITICAL, UNKNOWN, or back to OK).
    Level,
    /// One reading's level changed (opt-in through routes).
    Check,
    /// A host started flapping: its changes are held back until it stops.
    Flapping,
    FlappingStopped,
    CheckFlapping,
    CheckFlappingStopped,
    /// A host is still DOWN (`notify_reminder`).
    Reminder,
    /// Several hosts changed state at once: one message lists them.
    Storm,
    /// A problem of hbd itself (journal, DNS updates, ...).
    System,
    /// A notification channel has been failing for `notify_channel_alarm`.
    ChannelFailing,
    /// ... and works again.
    ChannelRecovered,
    /// Sent on request through the API.
    Test,
}

impl Kind {
    pub const ALL: &'static [Kind] = &[
        Kind::Down,
        Kind::NeverSeen,
        Kind::Up,
        Kind::Level,
        Kind::Check,
        Kind::Flapping,
        Kind::FlappingStopped,
        Kind::CheckFlapping,
        Kind::CheckFlappingStopped,
        Kind::Reminder,
        Kind::Storm,
        Kind::System,
        Kind::ChannelFailing,
        Kind::ChannelRecovered,
        Kind::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Down => "down",
            Kind::NeverSeen => "never_seen",
            Kind::Up => "up",
            Kind::Level => "level",
            Kind::Check => "check",
            Kind::Flapping => "flapping",
            Kind::FlappingStopped => "flapping_stopped",
            Kind::CheckFlapping => "check_flapping",
            Kind::CheckFlappingStopped => "check_flapping_stopped",
            Kind::Reminder => "reminder",
            Kind::Storm => "storm",
            Kind::System => "system",
            Kind::ChannelFailing => "channel_failing",
            Kind::ChannelRecovered => "channel_recovered",
            Kind::Test => "test",
        }
    }

    /// Per-check kinds: only sent where a route names them.
    pub fn per_check(self) -> bool {
        matches!(
            self,
            Kind::Check | Kind::CheckFlapping | Kind::CheckFlappingStopped
        )
    }

    /// About one host's state: held in the storm window and grouped.
    pub fn groupable(self) -> bool {
        !matches!(
            self,
            Kind::Storm | Kind::System | Kind::ChannelFailing | Kind::ChannelRecovered | Kind::Test
        )
    }
}

/// One failing reading, for the message body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub key: String,
    pub level: LevelName,
    /// Value with unit, as text.
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub threshold: String,
    #[serde(default)]
    pub message: String,
}

/// One notification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Unique and stable (also across restarts): `<created ms>-<counter>`.
    pub id: String,
    pub kind: Kind,
    /// The host (`hbd` for hbd's own problems).
    pub host: String,
    /// The reading, for per-check kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What is announced: `DOWN`, `UP`, `WARNING`, `FAILING`, ...
    pub state: String,
    /// The previous state, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Severity: sets Pushover's priority; routes select on it (`OK` = recovery).
    pub level: LevelName,
    /// When the announced state began (Unix ms).
    pub since_ms: u64,
    /// When the notification was made (Unix ms).
    pub ts_ms: u64,
    /// The triggering event's text, or hbd's own explanation.
    #[serde(default)]
    pub message: String,
    /// Failing readings with their thresholds (filled from the registry).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<Check>,
    /// Flapping: the percentage of state changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flap_percent: Option<f64>,
    /// Storm: the grouped notifications.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<Notification>,
}

impl Notification {
    /// The level a state text stands for (`DOWN` is CRITICAL).
    pub fn level_of(state: &str) -> LevelName {
        match state {
            "DOWN" | "NEVER_SEEN" | "FAILING" => LevelName::Critical,
            "UP" => LevelName::Ok,
            s => LevelName::parse(s).unwrap_or(LevelName::Unknown),
        }
    }
}
