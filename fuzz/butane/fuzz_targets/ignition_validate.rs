#![no_main]
//! Raw Ignition validation: any bytes must give a report, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = kindling_butane::validate_ignition(data).to_string();
});
