#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| kapstone_fuzz_targets::questionnaire_answers(data));
