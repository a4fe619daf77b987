//! A plugin that panics on every other collect (for the test suite).

use hbc_plugin_api::{export_plugin, Options, Plugin, Reading};

pub struct Panicky {
    n: u64,
}

impl Plugin for Panicky {
    const NAME: &'static str = "fault_panic";
    const DESCRIPTION: &'static str = "panics on every second collect";
    fn new(_: &Options) -> Result<Self, String> {
        Ok(Panicky { n: 0 })
    }
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        self.n += 1;
        if self.n.is_multiple_of(2) {
            panic!("deliberate panic number {}", self.n / 2);
        }
        Ok(vec![Reading::integer(
            "fault_panic.calls",
            self.n as i64,
            "",
        )])
    }
}

export_plugin!(Panicky);
