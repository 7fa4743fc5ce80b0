//! `Event::decode` never panics, and whatever it accepts re-encodes to a frame
//! that decodes to the same event.
#![no_main]

use isp_cluster::etp::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Event::decode(data.to_vec()) {
        let again = Event::decode(event.encode()).expect("an encoded event decodes");
        assert_eq!(again, event);
    }
});
