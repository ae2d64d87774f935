//! Feed arbitrary bytes to the probe parser: it must never panic, and whatever it accepts must
//! re-emit to bytes that parse to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmprobe_proto::{Datagram, Kind, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = Datagram::parse(data) {
        let mut out = vec![0u8; d.buffer_len()];
        let n = d.emit(&mut out).expect("buffer of buffer_len");
        assert_eq!(Datagram::parse(&out[..n]), Ok(d));
    }
    for kind in 1..=11 {
        let _ = Message::parse_body(Kind::from_u8(kind).unwrap(), data);
    }
});
