//! `wasmtime serve` baseline: answer `POST /` with the text statistics of
//! the JSON body `{"text": "..."}`, like ARW's `text-stats` tool, so both
//! sides of the benchmark do the same guest work.

use std::io::{Read as _, Write as _};

use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(TextStats);

struct TextStats;

#[derive(serde::Deserialize)]
struct Input {
    text: String,
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"application/json");
    let response = OutgoingResponse::new(headers);
    let _ = response.set_status_code(status);
    let Ok(outgoing) = response.body() else { return };
    ResponseOutparam::set(out, Ok(response));
    if let Ok(mut stream) = outgoing.write() {
        let _ = stream.write_all(body);
        let _ = stream.flush();
    }
    let _ = OutgoingBody::finish(outgoing, None);
}

impl wasip2::exports::http::incoming_handler::Guest for TextStats {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let mut bytes = Vec::new();
        if let Ok(body) = request.consume()
            && let Ok(mut stream) = body.stream()
        {
            let _ = stream.read_to_end(&mut bytes);
        }
        match serde_json::from_slice::<Input>(&bytes) {
            Ok(input) => {
                let stats = serde_json::json!({
                    "chars": input.text.chars().count(),
                    "words": input.text.split_whitespace().count(),
                    "lines": input.text.lines().count(),
                });
                respond(out, 200, stats.to_string().as_bytes());
            }
            Err(e) => respond(out, 400, format!("{{\"error\":\"{e}\"}}").as_bytes()),
        }
    }
}
