#![no_main]
//! Butane input parser and translator: any bytes must give Ok or a report, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opts = kindling_butane::TranslateOptions::default();
    match kindling_butane::translate(data, &opts) {
        Ok(t) => {
            // The output must be valid JSON and re-validate without panicking.
            let _ = kindling_butane::validate_ignition(t.json.as_bytes());
        }
        Err(e) => {
            let _ = e.report.to_string();
        }
    }
});
