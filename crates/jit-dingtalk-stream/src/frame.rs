//! The frames of the Stream protocol, as the official Go SDK writes them
//! (`payload/data_frame.go`, `event/event.go`, `event/frame_handler.go`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `type` of a frame that runs the connection (`ping`, `disconnect`).
pub const TYPE_SYSTEM: &str = "SYSTEM";
/// `type` of an org event frame.
pub const TYPE_EVENT: &str = "EVENT";
/// `type` of a callback frame (robots, cards); not subscribed here.
pub const TYPE_CALLBACK: &str = "CALLBACK";

/// A frame the server sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataFrame {
    /// `"1.0"`.
    #[serde(default)]
    pub spec_version: String,
    /// `SYSTEM`, `EVENT` or `CALLBACK`.
    #[serde(rename = "type")]
    pub kind: String,
    /// When the server sent it (ms).
    #[serde(default)]
    pub time: i64,
    /// `topic`, `messageId`, `contentType`, and for events `eventId`,
    /// `eventType`, `eventCorpId`, `eventBornTime`, `eventUnifiedAppId`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The payload: a JSON document in a string.
    #[serde(default)]
    pub data: String,
}

impl DataFrame {
    /// A header, or `""` when the frame has none of that name.
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    /// The `topic` header.
    pub fn topic(&self) -> &str {
        self.header("topic")
    }

    /// The `messageId` header, which the answer repeats.
    pub fn message_id(&self) -> &str {
        self.header("messageId")
    }
}

/// The answer to a frame, written on the same socket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFrameResponse {
    /// 200 handled (or LATER), 400 malformed, 404 no handler, 500 failed.
    pub code: u16,
    /// `contentType` and the answered `messageId`.
    pub headers: BTreeMap<String, String>,
    /// `"ok"` or why the frame was refused.
    pub message: String,
    /// A JSON document in a string (`{"status":"SUCCESS",...}` for events).
    pub data: String,
}

/// What an event handler tells the server: done, or send it again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckStatus {
    /// The event was taken; the server forgets it.
    Success,
    /// The event was not taken; the server redelivers it.
    Later,
}

impl DataFrameResponse {
    fn new(code: u16, message_id: &str, message: &str, data: String) -> Self {
        let mut headers = BTreeMap::new();
        headers.insert("contentType".to_string(), "application/json".to_string());
        headers.insert("messageId".to_string(), message_id.to_string());
        DataFrameResponse {
            code,
            headers,
            message: message.to_string(),
            data,
        }
    }

    /// The answer to a SYSTEM `ping`: same messageId, the ping's data echoed
    /// (Go SDK `OnPing`).
    pub fn pong(ping: &DataFrame) -> Self {
        Self::new(200, ping.message_id(), "ok", ping.data.clone())
    }

    /// The answer to an EVENT frame. LATER is code 500 with status LATER,
    /// as the Go SDK's `DefaultEventFrameHandler` writes it.
    pub fn event_ack(message_id: &str, status: AckStatus) -> Self {
        let (code, data) = match status {
            AckStatus::Success => (200, r#"{"status":"SUCCESS","message":"success"}"#),
            AckStatus::Later => (500, r#"{"status":"LATER","message":"later"}"#),
        };
        Self::new(code, message_id, "ok", data.to_string())
    }

    /// The answer to a frame that was handled and needs no result
    /// (SYSTEM `disconnect`).
    pub fn ok(message_id: &str) -> Self {
        Self::new(200, message_id, "", String::new())
    }

    /// The answer to a frame nobody here handles (a topic not subscribed).
    pub fn not_found(message_id: &str) -> Self {
        Self::new(404, message_id, "no handler for this topic", String::new())
    }

    /// The answer to a frame that could not be read.
    pub fn malformed(message_id: &str, why: &str) -> Self {
        Self::new(400, message_id, why, String::new())
    }

    /// The JSON text sent on the socket.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a response serialises")
    }
}
