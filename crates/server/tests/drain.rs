//! SIGTERM: readiness drops at once, connections are closed with 4200 within the grace period,
//! and the process exits 0.

mod common;

use std::time::{Duration, Instant};

use common::{http_get, Frame, Node, Ws, APP};

#[test]
fn sigterm_drains_connections_with_4200_and_exits_cleanly() {
    let mut node = Node::start("shutdown_grace_s = 2", APP);
    let mut sockets: Vec<Ws> = (0..5).map(|_| Ws::connect(node.port)).collect();
    for ws in &mut sockets {
        ws.subscribe("news");
    }
    let started = Instant::now();
    node.sigterm();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        // New connections and the load balancer see the node leave at once.
        match http_get(node.port, "/readyz") {
            Ok((503, _)) | Err(_) => break,
            _ => assert!(Instant::now() < deadline, "/readyz still 200 after SIGTERM"),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for ws in &mut sockets {
        let mut code = None;
        while let Some(frame) = ws.read(Duration::from_secs(4)) {
            if let Frame::Close(c) = frame {
                code = Some(c);
                break;
            }
        }
        assert_eq!(code, Some(4200), "each socket is told to reconnect");
    }
    let status = loop {
        if let Some(status) = node.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "node did not exit after draining"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status:?}");
}
