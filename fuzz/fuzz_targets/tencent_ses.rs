//! Any bytes as a tencent_ses webhook body (one event or a JSON array of them): never a panic, and
//! accepted bodies give storable events (see `mailhooks_fuzz::check_parse`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mailhooks_fuzz::check_parse(&mailhooks::receive::providers::tencent_ses::PROVIDER, data);
});
