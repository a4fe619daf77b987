//! A plugin whose collect always returns an error (for the test suite).

use hbc_plugin_api::{export_plugin, Options, Plugin, Reading};

pub struct Fail;

impl Plugin for Fail {
    const NAME: &'static str = "fault_fail";
    const DESCRIPTION: &'static str = "always fails";
    fn new(_: &Options) -> Result<Self, String> {
        Ok(Fail)
    }
    fn collect(&mut self) -> Result<Vec<Reading>, String> {
        Err("sensor /dev/imaginary is not there".into())
    }
}

export_plugin!(Fail);
