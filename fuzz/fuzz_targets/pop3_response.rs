#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    kurir_intake::fuzzing::pop3_responses(data);
});
