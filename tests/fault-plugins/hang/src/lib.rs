//! A plugin whose second collect never returns (for the test suite).

use hbc_plugin_api::{export_plugin, Options, Plugin, Reading};

pub struct Hang {
    n: u64,
}

impl Plugin for Hang {
    const NAME: &'static str = "fault_hang";
    const DESCRIPTION: &'static str = "answers once, then hangs forever";
    fn new(_: &Options) -> Result<Self, String> {
        Ok(Hang { n: 0 })
    }
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        self.n += 1;
        if self.n >= 2 {
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        Ok(vec![Reading::integer(
            "fault_hang.calls",
            self.n as i64,
            "",
        )])
    }
}

export_plugin!(Hang);
