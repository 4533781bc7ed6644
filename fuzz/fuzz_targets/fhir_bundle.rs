#![no_main]

#[path = "../harness/fhir_bundle.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = harness::run(data);
});
