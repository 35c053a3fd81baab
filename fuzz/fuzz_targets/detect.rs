//! Feeds arbitrary bytes to the detector and the ClientHello parser and checks
//! the invariants the proptests check (never panic, splitting never changes
//! the verdict, detect_final always decides): both call the same function.
#![no_main]

use ringside::detect::invariants::check_detect_invariants;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    check_detect_invariants(input);
});
