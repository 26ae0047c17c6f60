//! `secure-chat`: an end-to-end encrypted chat on Ferrocast, as small as it can be while still doing
//! what a real app server must do (see README.md):
//!
//! - log people in (a toy login: any name, a cookie session);
//! - decide who may join which room, and answer pusher-js's channel-authorization request with the
//!   SDK's signature and the room's shared secret, or with 401/403;
//! - publish messages through the SDK, which seals them with the room's key, so the broker only
//!   ever relays ciphertext;
//! - serve one page and pusher-js's encryption build (from npm, not a CDN).
//!
//! Configuration comes from the environment ([`config::Config::from_env`]); every value has a default
//! that works with `ferrocast` started without arguments (the demo app).

mod app;
mod config;

use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[tokio::main]
async fn main() {
    let config = match config::Config::from_env() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("secure-chat: {message}");
            std::process::exit(2);
        }
    };
    config.print();
    let state = match app::App::new(&config) {
        Ok(state) => Arc::new(state),
        Err(message) => {
            eprintln!("secure-chat: {message}");
            std::process::exit(2);
        }
    };
    let listener = match TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("secure-chat: cannot listen on {}: {e}", config.listen);
            std::process::exit(1);
        }
    };
    // Tests and `make example` wait for this line.
    println!("secure-chat listening on http://{}", config.listen);

    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("secure-chat: accept: {e}");
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => {
                println!("secure-chat: stopping");
                return;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, std::convert::Infallible>(state.handle(req).await) }
            });
            // A client that goes away mid-request is not worth a log line in an example.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
