//! Compressed answers, as some relays send whatever the request's
//! `accept-encoding` said: a body compressed with gzip, brotli or deflate
//! (zlib), streamed chunk by chunk with a flush after each, so SSE events
//! still arrive one at a time.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::http::HeaderValue;
use axum::response::Response;
use futures::StreamExt;

/// A `content-encoding` the mocks can answer in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Brotli,
    Deflate,
}

impl Encoding {
    /// Every encoding, for tests that try each.
    pub const ALL: [Encoding; 3] = [Encoding::Gzip, Encoding::Brotli, Encoding::Deflate];

    /// The `content-encoding` token.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Gzip => "gzip",
            Encoding::Brotli => "br",
            Encoding::Deflate => "deflate",
        }
    }

    fn encoder(self) -> Encoder {
        match self {
            Encoding::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
            Encoding::Brotli => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                5,
                22,
            ))),
            Encoding::Deflate => Encoder::Deflate(flate2::write::ZlibEncoder::new(
                Vec::new(),
                flate2::Compression::default(),
            )),
        }
    }
}

enum Encoder {
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
    Deflate(flate2::write::ZlibEncoder<Vec<u8>>),
}

impl Encoder {
    /// Compresses `chunk` and flushes: the bytes that decode to it.
    fn push(&mut self, chunk: &[u8]) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => {
                e.write_all(chunk)?;
                e.flush()?;
                std::mem::take(e.get_mut())
            }
            Encoder::Brotli(e) => {
                e.write_all(chunk)?;
                e.flush()?;
                std::mem::take(e.get_mut())
            }
            Encoder::Deflate(e) => {
                e.write_all(chunk)?;
                e.flush()?;
                std::mem::take(e.get_mut())
            }
        };
        Ok(Bytes::from(out))
    }

    /// The stream's last bytes (trailer, checksum).
    fn finish(self) -> std::io::Result<Bytes> {
        let out = match self {
            Encoder::Gzip(e) => e.finish()?,
            Encoder::Brotli(e) => e.into_inner(),
            Encoder::Deflate(e) => e.finish()?,
        };
        Ok(Bytes::from(out))
    }
}

/// `resp` with its body compressed in `encoding` as it streams, and the
/// headers saying so.
pub fn compress(resp: Response, encoding: Encoding) -> Response {
    let (mut parts, body) = resp.into_parts();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.headers.insert(
        axum::http::header::CONTENT_ENCODING,
        HeaderValue::from_static(encoding.as_str()),
    );
    let state = (body.into_data_stream(), Some(encoding.encoder()));
    let stream = futures::stream::unfold(state, |(mut body, encoder)| async move {
        let mut encoder = encoder?;
        match body.next().await {
            Some(Ok(chunk)) => {
                let out = encoder.push(&chunk);
                Some((out, (body, Some(encoder))))
            }
            Some(Err(e)) => Some((Err(std::io::Error::other(e)), (body, None))),
            None => Some((encoder.finish(), (body, None))),
        }
    });
    Response::from_parts(parts, Body::from_stream(stream))
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn decode(encoding: Encoding, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            Encoding::Gzip => flate2::read::GzDecoder::new(bytes).read_to_end(&mut out),
            Encoding::Deflate => flate2::read::ZlibDecoder::new(bytes).read_to_end(&mut out),
            Encoding::Brotli => brotli::Decompressor::new(bytes, 4096).read_to_end(&mut out),
        }
        .expect("decodes");
        out
    }

    #[test]
    fn each_flushed_chunk_decodes_to_what_was_pushed() {
        for encoding in Encoding::ALL {
            let mut encoder = encoding.encoder();
            let mut all = Vec::new();
            let first = encoder.push(b"event: ping\n\n").expect("push");
            assert!(!first.is_empty(), "{encoding:?} flushes each chunk");
            all.extend_from_slice(&first);
            all.extend_from_slice(&encoder.push(b"data: {}\n\n").expect("push"));
            all.extend_from_slice(&encoder.finish().expect("finish"));
            assert_eq!(decode(encoding, &all), b"event: ping\n\ndata: {}\n\n");
        }
    }
}
