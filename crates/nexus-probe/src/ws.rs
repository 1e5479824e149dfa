//! WebSocket probe: a real upgrade handshake, optionally one message round trip.

use serde::Deserialize;

use crate::Outcome;

/// `ws = { url = "ws://127.0.0.1:8765/", send = "ping", expect = "pong" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsSpec {
    /// `ws://` URL (`wss://` answers Unknown: this build has no WebSocket TLS).
    pub url: String,
    /// A text message to send after the handshake; a reply is then required.
    #[serde(default)]
    pub send: Option<String>,
    /// A substring the reply must contain.
    #[serde(default)]
    pub expect: Option<String>,
}

/// The largest WebSocket message or frame read from the target.
pub const WS_MAX_MESSAGE_BYTES: usize = 1 << 20;

#[cfg(not(feature = "ws"))]
pub(crate) async fn check(_spec: &WsSpec) -> Outcome {
    Outcome::unknown("WebSocket probe unavailable: nexus-probe was built without the `ws` feature")
}

#[cfg(feature = "ws")]
pub(crate) async fn check(spec: &WsSpec) -> Outcome {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let shown = crate::secrets::redact_url(&spec.url);
    if spec
        .url
        .get(..6)
        .is_some_and(|s| s.eq_ignore_ascii_case("wss://"))
    {
        return Outcome::unknown(format!(
            "WebSocket probe of {shown}: wss:// is not supported by this build (no TLS in tokio-tungstenite); \
             probe the TLS endpoint with an `http` probe instead"
        ));
    }
    let fail = |what: String| Outcome::critical(format!("WebSocket probe failed: {shown}: {what}"));
    // A reply is one line of text: a server sending a 64 MiB message (the
    // library's default limit) would be buffered whole.
    let mut limits = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default();
    limits.max_message_size = Some(WS_MAX_MESSAGE_BYTES);
    limits.max_frame_size = Some(WS_MAX_MESSAGE_BYTES);
    let connected =
        tokio_tungstenite::connect_async_with_config(spec.url.as_str(), Some(limits), false).await;
    let (mut stream, response) = match connected {
        Ok(ok) => ok,
        Err(e) => return fail(nexus_stdx::error_chain(&e)),
    };
    let status = response.status().as_u16();
    let mut outcome =
        Outcome::ok(format!("WebSocket handshake OK ({shown})")).with("http_status", status);
    if let Some(msg) = &spec.send {
        if let Err(e) = stream.send(Message::text(msg.clone())).await {
            return fail(format!("send failed: {e}"));
        }
        let reply = loop {
            match stream.next().await {
                Some(Ok(Message::Text(t))) => break t.to_string(),
                Some(Ok(Message::Binary(b))) => break String::from_utf8_lossy(&b).into_owned(),
                Some(Ok(Message::Close(_))) | None => {
                    return fail("connection closed before a reply".to_string());
                }
                Some(Ok(_)) => continue, // ping, pong, frame
                Some(Err(e)) => return fail(format!("receive failed: {e}")),
            }
        };
        if let Some(want) = &spec.expect
            && !reply.contains(want.as_str())
        {
            let _ = stream.close(None).await;
            return Outcome::critical(format!(
                "WebSocket reply from {shown} does not contain {want:?}"
            ))
            .with("reply", reply.chars().take(200).collect::<String>());
        }
        outcome = Outcome::ok(format!("WebSocket round trip OK ({shown})"))
            .with("http_status", status)
            .with("reply", reply.chars().take(200).collect::<String>());
    }
    // Close politely, but never let a peer that ignores the close frame hang us.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), stream.close(None)).await;
    outcome
}
