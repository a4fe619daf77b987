//! A plugin that aborts the whole process on its second collect, and can segfault
//! (`options: {segfault: true}`); only survivable with `isolate: true`.

use hbc_plugin_api::{export_plugin, Options, Plugin, Reading};

pub struct Abort {
    n: u64,
    segfault: bool,
}

impl Plugin for Abort {
    const NAME: &'static str = "fault_abort";
    const DESCRIPTION: &'static str = "answers once, then aborts the process";
    fn new(options: &Options) -> Result<Self, String> {
        let segfault = options
            .raw()
            .get("segfault")
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        Ok(Abort { n: 0, segfault })
    }
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        self.n += 1;
        if self.n >= 2 {
            if self.segfault {
                // SAFETY: none; this deliberately dereferences an invalid address to
                // crash the worker process, which is what the test needs.
                unsafe {
                    let p = std::ptr::null_mut::<u64>().wrapping_add(8);
                    std::ptr::write_volatile(p, 1);
                }
            }
            std::process::abort();
        }
        Ok(vec![Reading::integer(
            "fault_abort.calls",
            self.n as i64,
            "",
        )])
    }
}

export_plugin!(Abort);
