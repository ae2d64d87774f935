//! The real `sockperf ping-pong` against a std UDP reflector that applies the guest's transform:
//! proof that the header layout is sockperf's, not a guess.

use std::net::UdpSocket;
use std::process::Command;
use std::string::String;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use std::{eprintln, format, thread};

use crate::services::sockperf;

#[test]
fn real_sockperf_ping_pong_measures_the_reflector() {
    if Command::new("sockperf").arg("--version").output().is_err() {
        eprintln!("skipped: sockperf is not installed");
        return;
    }
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let port = socket.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let reflector = {
        let stop = stop.clone();
        thread::spawn(move || {
            let (mut replies, mut silent) = (0u64, 0u64);
            let mut buf = [0u8; 65536];
            while !stop.load(Ordering::Relaxed) {
                let Ok((len, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                match sockperf::reflect(&mut buf[..len]) {
                    Ok(reply) => {
                        socket.send_to(&buf[..reply], from).unwrap();
                        replies += 1;
                    }
                    Err(_) => silent += 1,
                }
            }
            (replies, silent)
        })
    };
    let out = Command::new("sockperf")
        .args([
            "ping-pong",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "--time",
            "1",
        ])
        .output()
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let (replies, silent) = reflector.join().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sockperf failed:\n{text}");
    assert!(
        replies > 100,
        "reflector answered only {replies} messages:\n{text}"
    );
    // sockperf's warm-up messages are the only ones a reflector must leave unanswered.
    eprintln!("reflector: {replies} replies, {silent} silent");
    let received = text
        .lines()
        .find(|l| l.contains("[Valid Duration]"))
        .and_then(|l| l.split("ReceivedMessages=").nth(1))
        .and_then(|s| {
            s.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse::<u64>()
                .ok()
        })
        .unwrap_or_else(|| panic!("no received-message count in sockperf output:\n{text}"));
    assert!(received > 100, "sockperf counted {received} pongs:\n{text}");
    assert!(
        text.contains("Summary: Latency is"),
        "no latency summary:\n{text}"
    );
    assert!(
        !text.contains("ERROR"),
        "sockperf reported an error:\n{text}"
    );
}
