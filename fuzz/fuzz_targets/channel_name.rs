//! Channel and event name validation over arbitrary text and limits.
//!
//! Input: byte 0 is the length limit, the rest the name. Checks: a valid name obeys the limit
//! and the charset, is classified as `ChannelKind::of` says and stays valid under any larger
//! limit; a refusal names the right reason.
#![no_main]

use ferrocast_protocol::channel::{
    is_cache, is_client_event, validate_channel_name, validate_event_name, ChannelKind, ChannelNameError,
    EventNameError,
};
use libfuzzer_sys::fuzz_target;

fn valid_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'=' | b'@' | b',' | b'.' | b';')
}

fuzz_target!(|data: &[u8]| {
    let [limit, rest @ ..] = data else {
        return;
    };
    let Ok(name) = std::str::from_utf8(rest) else {
        return;
    };
    let max = usize::from(*limit);
    let kind = ChannelKind::of(name);
    let _ = (
        kind.requires_auth(),
        kind.allows_client_events(),
        is_cache(name),
        is_client_event(name),
    );

    match validate_channel_name(name, max) {
        Ok(valid) => {
            assert!(!name.is_empty() && name.len() <= max);
            assert_eq!(valid, kind);
            let body = name.strip_prefix("#server-to-user-").unwrap_or(name);
            assert!(!body.is_empty() && body.bytes().all(valid_byte), "{name:?} accepted");
            assert_eq!(validate_channel_name(name, usize::MAX), Ok(valid));
        }
        Err(ChannelNameError::Empty) => assert!(name.is_empty()),
        Err(ChannelNameError::TooLong { max: reported }) => {
            assert_eq!(reported, max);
            assert!(name.len() > max);
        }
        Err(ChannelNameError::InvalidCharacters) => assert!(!name.bytes().all(valid_byte)),
        Err(ChannelNameError::Reserved) => assert!(name.starts_with('#')),
    }

    match validate_event_name(name, max) {
        Ok(()) => {
            assert!(!name.is_empty() && name.len() <= max);
            assert!(!name.starts_with("pusher:") && !name.starts_with("pusher_internal:"));
            assert_eq!(validate_event_name(name, usize::MAX), Ok(()));
        }
        Err(EventNameError::Empty) => assert!(name.is_empty()),
        Err(EventNameError::TooLong { max: reported }) => assert!(reported == max && name.len() > max),
        Err(EventNameError::Reserved) => assert!(name.starts_with("pusher")),
    }
});
